//! Raw gRPC plumbing shared by both ends of the tunnel: length-prefixed frames, metadata mapping and
//! status conversion. The tunnel forwards calls without knowing their message types (a pass-through
//! codec), so it works on frames, not on decoded messages.

pub mod frame;
pub mod metadata;
pub mod raw;
pub mod status;
