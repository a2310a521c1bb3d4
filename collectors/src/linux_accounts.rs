//! The `linux_accounts` collector. (Being written.)
use crate::{Collector, SettingError};
pub fn build(_settings: &toml::Table) -> Result<Box<dyn Collector>, Vec<SettingError>> {
    Err(vec![SettingError::new(None, "the linux_accounts kind is not built yet")])
}
