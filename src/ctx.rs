//! The context every command runs in: resolved settings and output mode.

use anyhow::Result;
use chrono::{DateTime, Utc};

use crate::config::{Config, Env, Overrides};

/// One run's settings, passed by reference to everything that needs them.
#[derive(Debug)]
pub struct Ctx {
    pub config: Config,
    /// `--json`: exactly one JSON document on stdout.
    pub json: bool,
}

impl Ctx {
    /// Reads the environment and `.env` (or `env_file`), applies `overrides`
    /// and validates the result.
    pub fn load(
        env_file: Option<&std::path::Path>,
        overrides: &Overrides,
        json: bool,
    ) -> Result<Ctx> {
        let env = Env::load(env_file)?;
        Ok(Ctx {
            config: Config::from_env(&env, overrides)?,
            json,
        })
    }

    /// The market clock: `SKIM_NOW` when set, else the real clock. Protocol
    /// timestamps (OAuth, token expiry) always use the real clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.config
            .now
            .map_or_else(Utc::now, |now| now.with_timezone(&Utc))
    }
}
