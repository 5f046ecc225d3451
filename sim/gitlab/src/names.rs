//! Agent name rule (Rails `Gitlab::Regex.cluster_agent_name_regex` plus the
//! 63 character length validation on `Clusters::Agent#name`).

/// Longest accepted agent name; names end up in DNS-like contexts.
pub const MAX_AGENT_NAME_LEN: usize = 63;

/// Why an agent name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("name can't be blank")]
    Blank,
    /// More than [`MAX_AGENT_NAME_LEN`] characters.
    #[error("name is too long ({len} characters, maximum is 63)")]
    TooLong {
        /// Length of the refused name in bytes.
        len: usize,
    },
    /// Does not match `\A[a-z0-9]([-a-z0-9]*[a-z0-9])?\z`.
    #[error("name can contain only lowercase letters, digits, and '-', but cannot start or end with '-'")]
    Format,
}

/// Checks `name` against `\A[a-z0-9]([-a-z0-9]*[a-z0-9])?\z` and the length
/// limit. Written by hand so that no regex engine subtleties (such as `$`
/// accepting a trailing newline) can leak in.
pub fn validate_agent_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Blank);
    }
    if name.len() > MAX_AGENT_NAME_LEN {
        return Err(NameError::TooLong { len: name.len() });
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = name.as_bytes();
    let first_last_ok = alnum(bytes[0]) && alnum(bytes[bytes.len() - 1]);
    if !first_last_ok || !bytes.iter().all(|&b| alnum(b) || b == b'-') {
        return Err(NameError::Format);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_name_table() {
        let long_ok = "a".repeat(63);
        let too_long = "a".repeat(64);
        let cases: &[(&str, Result<(), NameError>)] = &[
            ("a", Ok(())),
            ("0", Ok(())),
            ("my-agent", Ok(())),
            ("a-b-c-1", Ok(())),
            ("a--b", Ok(())),
            (&long_ok, Ok(())),
            ("", Err(NameError::Blank)),
            (&too_long, Err(NameError::TooLong { len: 64 })),
            ("-a", Err(NameError::Format)),
            ("a-", Err(NameError::Format)),
            ("-", Err(NameError::Format)),
            ("My-agent", Err(NameError::Format)),
            ("my_agent", Err(NameError::Format)),
            ("my.agent", Err(NameError::Format)),
            ("my agent", Err(NameError::Format)),
            ("agent\n", Err(NameError::Format)),
            ("agént", Err(NameError::Format)),
        ];
        for (name, want) in cases {
            assert_eq!(&validate_agent_name(name), want, "name {name:?}");
        }
    }
}
