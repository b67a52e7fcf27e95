//! Sapa's desktop views: egui screens that draw a view model and return the intents of the
//! person at the desk. This first part holds the view models and intents the engine fills and
//! executes.

pub mod intent;
pub mod model;
pub mod time_text;

pub use crate::intent::{Intent, Password};
pub use crate::model::*;
pub use crate::time_text::{CalendarDate, LocalDateTime};
