//! `--kas-address`: `grpc://host[:port]` or `grpcs://host[:port]`.

/// A parsed kas address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KasAddress {
    pub tls: bool,
    /// `host:port`.
    pub authority: String,
    pub host: String,
}

/// Why a kas address was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    #[error("kas address {0:?}: missing scheme; use grpc:// or grpcs://")]
    NoScheme(String),
    #[error(
        "kas address {0:?}: scheme {1}:// is not supported by kasim (WebSocket tunnelling is not implemented); use grpc:// or grpcs://"
    )]
    WebSocket(String, String),
    #[error("kas address {0:?}: unsupported scheme {1}://; use grpc:// or grpcs://")]
    Scheme(String, String),
    #[error("kas address {0:?}: missing host")]
    NoHost(String),
    #[error("kas address {0:?}: invalid port")]
    Port(String),
    #[error("kas address {0:?}: unexpected path {1:?}")]
    Path(String, String),
}

impl std::str::FromStr for KasAddress {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, AddressError> {
        let (scheme, rest) = s.split_once("://").ok_or_else(|| AddressError::NoScheme(s.to_owned()))?;
        let tls = match scheme {
            "grpc" => false,
            "grpcs" => true,
            "ws" | "wss" => return Err(AddressError::WebSocket(s.to_owned(), scheme.to_owned())),
            other => return Err(AddressError::Scheme(s.to_owned(), other.to_owned())),
        };
        let (hostport, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
        if !path.is_empty() {
            return Err(AddressError::Path(s.to_owned(), format!("/{path}")));
        }
        let (host, port) = if let Some(stripped) = hostport.strip_prefix('[') {
            let (h, after) = stripped.split_once(']').ok_or_else(|| AddressError::NoHost(s.to_owned()))?;
            (format!("[{h}]"), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (hostport.to_owned(), None),
            }
        };
        if host.is_empty() || host == "[]" {
            return Err(AddressError::NoHost(s.to_owned()));
        }
        let port = match port {
            Some(p) => p.parse::<u16>().map_err(|_| AddressError::Port(s.to_owned()))?,
            None if tls => 443,
            None => 80,
        };
        Ok(Self { tls, authority: format!("{host}:{port}"), host: host.trim_matches(['[', ']']).to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_and_ports() {
        let a: KasAddress = "grpc://127.0.0.1:8150".parse().unwrap();
        assert_eq!((a.tls, a.authority.as_str(), a.host.as_str()), (false, "127.0.0.1:8150", "127.0.0.1"));
        let a: KasAddress = "grpcs://kas.gitlab.example".parse().unwrap();
        assert_eq!((a.tls, a.authority.as_str()), (true, "kas.gitlab.example:443"));
        let a: KasAddress = "grpc://[::1]:8150".parse().unwrap();
        assert_eq!((a.authority.as_str(), a.host.as_str()), ("[::1]:8150", "::1"));
        let e = "wss://kas.gitlab.com".parse::<KasAddress>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "kas address \"wss://kas.gitlab.com\": scheme wss:// is not supported by kasim (WebSocket tunnelling is not implemented); use grpc:// or grpcs://"
        );
        assert!(matches!("http://x".parse::<KasAddress>(), Err(AddressError::Scheme(..))));
        assert!(matches!("kas:8150".parse::<KasAddress>(), Err(AddressError::NoScheme(..))));
        assert!(matches!("grpc://:1".parse::<KasAddress>(), Err(AddressError::NoHost(..))));
        assert!(matches!("grpc://h:99999".parse::<KasAddress>(), Err(AddressError::Port(..))));
        assert!(matches!("grpc://h:1/x".parse::<KasAddress>(), Err(AddressError::Path(..))));
    }
}
