//! The `log_file` collector. (Being written.)
use crate::{Collector, SettingError};
pub fn build(_settings: &toml::Table) -> Result<Box<dyn Collector>, Vec<SettingError>> {
    Err(vec![SettingError::new(None, "the log_file kind is not built yet")])
}
