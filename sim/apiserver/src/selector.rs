//! Label and field selectors.
//!
//! Label selectors support the equality-based (`a=b`, `a==b`, `a!=b`) and
//! existence (`a`, `!a`) forms plus set-based `in`/`notin`. Field
//! selectors support `metadata.name` and `metadata.namespace` with `=`,
//! `==` and `!=`, which is what every modelled resource supports upstream
//! (per-kind fields such as `status.phase` are not modelled).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// A malformed selector; rendered into a 400 BadRequest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SelectorError {
    #[error("unable to parse requirement: {0}")]
    Label(String),
    #[error("field label not supported: {0}")]
    FieldLabel(String),
    #[error("invalid selector: {0}")]
    Field(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Req {
    Eq(String, String),
    NotEq(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LabelSelector(Vec<Req>);

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 316
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn key(k: &str) -> Result<String, SelectorError> {
    let k = k.trim();
    if valid_key(k) {
        Ok(k.to_string())
    } else {
        Err(SelectorError::Label(format!("invalid label key {k:?}")))
    }
}

fn value(v: &str) -> Result<String, SelectorError> {
    let v = v.trim();
    if valid_value(v) {
        Ok(v.to_string())
    } else {
        Err(SelectorError::Label(format!("invalid label value {v:?}")))
    }
}

fn set_values(rest: &str) -> Result<Vec<String>, SelectorError> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| SelectorError::Label(format!("expected (values) in {rest:?}")))?;
    inner.split(',').map(value).collect()
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self(reqs));
        }
        for term in split_top(s) {
            let t = term.trim();
            let req = if let Some((k, v)) = t.split_once("!=") {
                Req::NotEq(key(k)?, value(v)?)
            } else if let Some((k, v)) = t.split_once("==") {
                Req::Eq(key(k)?, value(v)?)
            } else if let Some((k, v)) = t.split_once('=') {
                Req::Eq(key(k)?, value(v)?)
            } else if let Some(k) = t.strip_prefix('!') {
                Req::NotExists(key(k)?)
            } else if let Some((k, rest)) = t.split_once(" notin ") {
                Req::NotIn(key(k)?, set_values(rest)?)
            } else if let Some((k, rest)) = t.split_once(" in ") {
                Req::In(key(k)?, set_values(rest)?)
            } else {
                Req::Exists(key(t)?)
            };
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    /// Builds a selector from a `metav1.LabelSelector` JSON value.
    pub fn from_api(v: &Value) -> Result<Self, SelectorError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Expr {
            key: String,
            operator: String,
            #[serde(default)]
            values: Option<Vec<String>>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Api {
            #[serde(default)]
            match_labels: Option<BTreeMap<String, String>>,
            #[serde(default)]
            match_expressions: Option<Vec<Expr>>,
        }
        let api: Api =
            serde_json::from_value(v.clone()).map_err(|e| SelectorError::Label(e.to_string()))?;
        let mut reqs: Vec<Req> = api
            .match_labels
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| Req::Eq(k, v))
            .collect();
        for e in api.match_expressions.unwrap_or_default() {
            let vals = e.values.unwrap_or_default();
            reqs.push(match e.operator.as_str() {
                "In" => Req::In(e.key, vals),
                "NotIn" => Req::NotIn(e.key, vals),
                "Exists" => Req::Exists(e.key),
                "DoesNotExist" => Req::NotExists(e.key),
                op => {
                    return Err(SelectorError::Label(format!(
                        "{op:?} is not a valid label selector operator"
                    )));
                }
            });
        }
        Ok(Self(reqs))
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Req::Eq(k, v) => labels.get(k) == Some(v),
            Req::NotEq(k, v) => labels.get(k) != Some(v),
            Req::Exists(k) => labels.contains_key(k),
            Req::NotExists(k) => !labels.contains_key(k),
            Req::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Req::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
        })
    }

    /// Matches an object's `metadata.labels`.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches(&labels_of(obj))
    }
}

/// `metadata.labels` as a map; non-string values are ignored.
pub(crate) fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// A parsed field selector over `metadata.name`/`metadata.namespace`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, eq, val) = if let Some((k, v)) = term.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = term.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = term.split_once('=') {
                (k, true, v)
            } else {
                return Err(SelectorError::Field(format!(
                    "invalid selector: '{term}'; can't understand '{term}'"
                )));
            };
            let field = field.trim();
            if field != "metadata.name" && field != "metadata.namespace" {
                return Err(SelectorError::FieldLabel(field.to_string()));
            }
            reqs.push((field.to_string(), eq, val.trim().to_string()));
        }
        Ok(Self(reqs))
    }

    pub fn matches_object(&self, obj: &Value) -> bool {
        self.0.iter().all(|(field, eq, val)| {
            let ptr = if field == "metadata.name" {
                "/metadata/name"
            } else {
                "/metadata/namespace"
            };
            let actual = obj.pointer(ptr).and_then(Value::as_str).unwrap_or("");
            (actual == val) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors_match_like_upstream() {
        let obj = json!({"metadata": {"labels": {"app": "web", "tier": "fe"}}});
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("app!=web", false),
            ("app=web,tier=fe", true),
            ("app=web,tier!=fe", false),
            ("missing!=x", true),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("app in (db,web)", true),
            ("app notin (db,web)", false),
            ("missing notin (x)", true),
        ];
        for (s, want) in cases {
            assert_eq!(
                LabelSelector::parse(s).unwrap().matches_object(&obj),
                want,
                "{s}"
            );
        }
        for bad in ["=x", "a=b=c", "a in x", "a=(", "!"] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_selectors() {
        let obj = json!({"metadata": {"name": "a", "namespace": "n"}});
        assert!(
            FieldSelector::parse("metadata.name=a")
                .unwrap()
                .matches_object(&obj)
        );
        assert!(
            !FieldSelector::parse("metadata.name!=a")
                .unwrap()
                .matches_object(&obj)
        );
        assert!(
            FieldSelector::parse("metadata.namespace==n,metadata.name=a")
                .unwrap()
                .matches_object(&obj)
        );
        assert_eq!(
            FieldSelector::parse("status.phase=Running"),
            Err(SelectorError::FieldLabel("status.phase".into()))
        );
    }

    #[test]
    fn api_selectors() {
        let sel = LabelSelector::from_api(&json!({"matchLabels": {"a": "true"}})).unwrap();
        assert!(sel.matches_object(&json!({"metadata": {"labels": {"a": "true"}}})));
        assert!(!sel.matches_object(&json!({"metadata": {}})));
        let all = LabelSelector::from_api(&json!({})).unwrap();
        assert!(all.matches_object(&json!({})));
    }
}
