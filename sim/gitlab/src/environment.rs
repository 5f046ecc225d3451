//! `ci_access` environment patterns (Rails `Gitlab::Ci::EnvironmentMatcher`).
//!
//! Chosen behaviour: copy Rails faithfully. Rails does
//! `pattern == env || (pattern.include?('*') && Regexp.new(pattern.gsub('*', '.*')).match?(env))`,
//! so the regex is **unanchored** and every other regex metacharacter keeps
//! its meaning: `review/*` also matches `old-review/x`, and `prod.*` is
//! already a regex. A blank pattern never matches. A pattern that does not
//! compile makes Rails raise (HTTP 500); here it is an [`EnvironmentError`].
//! Divergence: Rust's `regex` crate stands in for Onigmo, so constructs only
//! Onigmo knows (look-around, back-references) are errors here.

/// A pattern with `*` that is not a valid regex once `*` becomes `.*`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment pattern {pattern:?} is not a valid regular expression: {reason}")]
pub struct EnvironmentError {
    /// The pattern as written in the config.
    pub pattern: String,
    /// What the regex compiler said.
    pub reason: String,
}

/// Does one pattern match the environment name?
pub fn pattern_matches(pattern: &str, environment: &str) -> Result<bool, EnvironmentError> {
    if pattern.trim().is_empty() {
        return Ok(false);
    }
    if pattern == environment {
        return Ok(true);
    }
    if !pattern.contains('*') {
        return Ok(false);
    }
    let re = regex::RegexBuilder::new(&pattern.replace('*', ".*"))
        .size_limit(1 << 20)
        .build()
        .map_err(|e| EnvironmentError { pattern: pattern.to_owned(), reason: e.to_string() })?;
    Ok(re.is_match(environment))
}

/// Filter rule of an entry: an empty list admits every job; otherwise the job
/// needs an environment and one pattern must match it. Patterns are tried in
/// order and the first match wins, so (as in Ruby's `any?`) a broken pattern
/// after a matching one is never compiled.
pub fn environments_admit(patterns: &[String], environment: Option<&str>) -> Result<bool, EnvironmentError> {
    if patterns.is_empty() {
        return Ok(true);
    }
    let Some(env) = environment else {
        return Ok(false);
    };
    for p in patterns {
        if pattern_matches(p, env)? {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_table_follows_rails() {
        let cases = [
            ("production", "production", true),
            ("production", "Production", false),
            ("production", "production-2", false), // no `*`: equality only
            ("review/*", "review/feature-1", true),
            ("review/*", "review/", true),
            ("review/*", "review", false),
            ("review/*", "old-review/x", true), // unanchored, like Rails
            ("*", "anything", true),
            ("prod*", "preprod", true), // unanchored start
            ("p.od*", "prod", true),    // `.` keeps its regex meaning
            ("p.od*", "p-od", true),
            ("(a|b)*", "xbz", true), // becomes `(a|b).*`: alternation kept
            ("(a|b)*", "zzz", false),
            ("", "", false), // blank patterns never match
            ("  ", "  ", false),
        ];
        for (pattern, env, want) in cases {
            assert_eq!(pattern_matches(pattern, env), Ok(want), "{pattern:?} vs {env:?}");
        }
    }

    #[test]
    fn invalid_pattern_is_an_error_only_when_it_is_reached() {
        let err = pattern_matches("a(*", "a").unwrap_err();
        assert_eq!(err.pattern, "a(*");
        // Exact match wins before the regex is compiled.
        assert_eq!(pattern_matches("a(*", "a(*"), Ok(true));
        // `any?` stops at the first match.
        let pats = vec!["prod".to_owned(), "a(*".to_owned()];
        assert_eq!(environments_admit(&pats, Some("prod")), Ok(true));
        assert!(environments_admit(&pats, Some("dev")).is_err());
    }

    #[test]
    fn empty_list_admits_all_and_missing_environment_fails_non_empty() {
        assert_eq!(environments_admit(&[], None), Ok(true));
        assert_eq!(environments_admit(&[], Some("x")), Ok(true));
        assert_eq!(environments_admit(&["*".to_owned()], None), Ok(false));
    }
}
