//! The `consent` section: which whole-text replies opt a phone out or back in.

use serde::Deserialize;

use super::{ConfigError, invalid};
use crate::domain::consent::Keywords;

#[derive(Debug, Clone, Deserialize)]
pub struct ConsentSettings {
    pub stop_keywords: Vec<String>,
    pub start_keywords: Vec<String>,
}

impl ConsentSettings {
    pub fn keywords(&self) -> Keywords {
        Keywords {
            stop: self.stop_keywords.clone(),
            start: self.start_keywords.clone(),
        }
    }

    /// A keyword may not be blank, nor be both a stop and a start keyword.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, list) in [
            ("consent.stop_keywords", &self.stop_keywords),
            ("consent.start_keywords", &self.start_keywords),
        ] {
            if list.iter().any(|k| k.trim().is_empty()) {
                return Err(invalid(key, "keywords must not be empty"));
            }
        }
        if let Some(both) = self.stop_keywords.iter().find(|s| {
            self.start_keywords
                .iter()
                .any(|k| k.trim().eq_ignore_ascii_case(s.trim()))
        }) {
            return Err(invalid(
                "consent.start_keywords",
                format!("{both:?} is also a stop keyword"),
            ));
        }
        Ok(())
    }
}
