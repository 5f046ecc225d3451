//! GitLab stand-in (work in progress).
