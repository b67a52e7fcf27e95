//! Sapa UI
