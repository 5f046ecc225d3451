//! Errors for YAML configuration files that name the file, line, column and field.

use serde::de::DeserializeOwned;

/// A config file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {source}")]
    Read { file: String, source: std::io::Error },
    #[error("{file}:{line}:{column}: {field}: {message}")]
    Field { file: String, line: usize, column: usize, field: String, message: String },
    #[error("{file}: {field}: {message}")]
    Invalid { file: String, field: String, message: String },
}

/// Parses YAML strictly into `T`, reporting the exact location and field path of the first error.
pub fn parse_yaml<T: DeserializeOwned>(file: &str, text: &str) -> Result<T, ConfigError> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        // serde_yaml_ng locates custom errors (bad values) at the enclosing mapping; the key of the
        // field path is where a human looks, so prefer it when it can be found.
        let (line, column) =
            locate(text, &field).or_else(|| inner.location().map(|l| (l.line(), l.column()))).unwrap_or((0, 0));
        // serde_yaml_ng appends " at line L column C" to messages; the location is already in front.
        let message = inner.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message);
        // ...and prefixes the path it knows ("agent.listen: "); ours, with the key, is more precise.
        let message = match message.split_once(": ") {
            Some((prefix, rest)) if !prefix.contains(' ') && !prefix.contains('`') => rest,
            _ => message,
        }
        .to_owned();
        ConfigError::Field { file: file.to_owned(), line, column, field, message }
    })
}

/// Finds the 1-based line and column of the key at `path` (`a.b[2].c`) in block-style YAML.
pub fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    if path.is_empty() || path == "." {
        return None;
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut from = 0usize;
    let mut parent_indent: Option<usize> = None;
    let mut found = None;
    for seg in path.split('.') {
        let (key, index) = match seg.split_once('[') {
            Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        let mut hit = None;
        for (i, line) in lines.iter().enumerate().skip(from) {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = line.len() - trimmed.len();
            if parent_indent.is_some_and(|p| indent <= p)
                && !(trimmed.starts_with("- ") && parent_indent == Some(indent))
            {
                break;
            }
            let body = trimmed.strip_prefix("- ").unwrap_or(trimmed);
            let key_col = indent + (trimmed.len() - body.len());
            if body.strip_prefix(key).is_some_and(|r| r.starts_with(':')) {
                hit = Some((i, key_col));
                break;
            }
        }
        let (i, col) = hit?;
        found = Some((i + 1, col + 1));
        from = i + 1;
        parent_indent = Some(col);
        if let Some(n) = index {
            // Move to the n-th list item below the key.
            let mut count = 0;
            let mut item = None;
            for (j, line) in lines.iter().enumerate().skip(from) {
                let trimmed = line.trim_start();
                if trimmed.is_empty() || trimmed.starts_with('#') {
                    continue;
                }
                let indent = line.len() - trimmed.len();
                if indent < col || (indent == col && !trimmed.starts_with("- ")) {
                    break;
                }
                if trimmed.starts_with("- ") && (indent == col || indent == col + 2) {
                    if count == n {
                        item = Some((j, indent));
                        break;
                    }
                    count += 1;
                }
            }
            let (j, indent) = item?;
            found = Some((j + 1, indent + 3));
            from = j;
            parent_indent = Some(indent);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::locate;

    #[test]
    fn locates_nested_keys_and_list_items() {
        let y = "a:\n  b: 1\n  c:\n    - x: 1\n    - x: 2\n      y: 3\nd: 4\n";
        assert_eq!(locate(y, "a.b"), Some((2, 3)));
        assert_eq!(locate(y, "a.c[1].y"), Some((6, 7)));
        assert_eq!(locate(y, "a.c[1]"), Some((5, 7)));
        assert_eq!(locate(y, "d"), Some((7, 1)));
        assert_eq!(locate(y, "a.d"), None, "d is not under a");
        assert_eq!(locate(y, "a.c[5]"), None);
    }
}
