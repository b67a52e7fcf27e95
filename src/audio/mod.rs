pub mod device;
pub mod jitter;
pub mod mixer;
pub mod process;
pub mod receive;
pub mod red;
pub mod rfc4733;
pub mod tone;
