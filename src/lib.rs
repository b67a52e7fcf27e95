//! sapa
