pub mod jitter;
pub mod mixer;
pub mod receive;
pub mod tone;
