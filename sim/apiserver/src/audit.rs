//! The audit log: one record per request, with the identity the API server
//! saw. This is how tests observe what the agent's impersonation did.
//!
//! ## Differences from a real API server
//! Records are plain Rust values, not `audit.k8s.io/v1` `Event`s; there is
//! no audit policy (every request is recorded at the equivalent of the
//! `Metadata` level), no stages (one record when the response head is
//! ready, so a watch is recorded when it starts) and no request/response
//! bodies. `Audit-Id` headers are derived from the record id.

use crate::authn::UserInfo;
use crate::request_info::RequestAttributes;

/// What the server decided about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditDecision {
    /// Authentication failed (401).
    Unauthenticated,
    /// The impersonation headers were malformed (400).
    ImpersonationRejected,
    /// The requestor may not impersonate what it asked for (403).
    ImpersonationForbidden,
    /// The authorizer denied the request (403).
    Forbidden,
    /// The authorizer allowed the request; see the status for the outcome.
    Allowed,
}

/// One audited request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Position in the log, from 0; also the source of the `Audit-Id` header.
    pub id: u64,
    /// HTTP method.
    pub method: String,
    /// Request path, without the query.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// The user the credentials authenticated, if any.
    pub user: Option<UserInfo>,
    /// The impersonated user, when impersonation headers were honoured.
    pub impersonated_user: Option<UserInfo>,
    /// Authorization attributes of the request itself.
    pub attributes: RequestAttributes,
    /// The decision.
    pub decision: AuditDecision,
    /// HTTP status code of the response (for watches: of the response head).
    pub status: u16,
}

impl AuditEvent {
    /// The identity the request acted as: the impersonated user if any,
    /// else the authenticated one.
    pub fn effective_user(&self) -> Option<&UserInfo> {
        self.impersonated_user.as_ref().or(self.user.as_ref())
    }
}

/// Deterministic `Audit-Id` header value for event `id`.
pub(crate) fn audit_id(id: u64) -> String {
    format!("a0d17000-0000-4000-8000-{id:012x}")
}
