//! Stage 1: the plugin configuration compiled once per topology epoch.

pub mod epoch;
pub mod settings_cache;
