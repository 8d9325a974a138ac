//! The settings a generation runs with, described as `--print-config` prints them (the
//! description is made by `crate::config` from the parse): the stats socket's `GET /config`
//! shows it, and a swap that re-reads `--config` marks the options it kept (`reread.rs`).

use std::fmt::Write as _;

/// The text `--print-config` prints.
#[derive(Debug, Clone)]
pub(crate) struct EffectiveConfig(String);

impl EffectiveConfig {
    pub(crate) fn from_text(text: String) -> Self {
        EffectiveConfig(text)
    }

    pub(crate) fn text(&self) -> &str {
        &self.0
    }

    /// This text with the settings of `keys` as `running` has them, each marked as kept (a
    /// re-read whose file changed options that need a restart: `reread.rs`).
    pub(crate) fn keeping(&self, running: &EffectiveConfig, keys: &[String]) -> EffectiveConfig {
        let key_of = |line: &str| {
            let line = line.strip_prefix("# ").unwrap_or(line);
            line.split_once(' ').map(|(key, _)| key.to_owned())
        };
        let kept = |key: &str| {
            running
                .0
                .lines()
                .find(|line| key_of(line).as_deref() == Some(key))
        };
        let mut out = String::with_capacity(self.0.len());
        for line in self.0.lines() {
            match key_of(line)
                .filter(|key| keys.contains(key))
                .map(|k| (kept(&k), line))
            {
                Some((Some(old), new)) if old != new => {
                    let _ = writeln!(out, "{old}; kept: the file's change needs a restart");
                }
                _ => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        EffectiveConfig(out)
    }
}
