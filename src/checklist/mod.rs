//! The pre-shutdown checklist, idle detection and its cost, the shutdown decision, and the
//! SSH address helper. No UI here: the console's checklist screen and `opsconsole
//! shutdown-check` both show a [`Report`] built by [`gather::gather`].
//!
//! Each item passes, fails (with its reason and the key or command that fixes it), or is
//! off (turned off in `[checklist]`, or about an upload level that is disabled).

pub mod config;
pub mod gather;
pub mod git;
pub mod idle;
pub mod items;
pub mod metadata;
pub mod run;
pub mod shutdown;
pub mod sshconfig;

use serde::Serialize;

pub use config::{ChecklistConfig, ExternalIpConfig, ExtraItem, IdleConfig, ShutdownConfig};

/// Where an item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    /// Not checked: turned off in config, or about an upload level that is disabled.
    Off,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Off => "off",
        }
    }
}

/// How to fix a failing item: the console action (its key comes from the keymap), the
/// command line, and words.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Fix {
    /// The `[keys]` name of the console action that fixes it (`sync_now`, `prune`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// A command that fixes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    pub words: String,
}

impl Fix {
    pub fn words(w: impl Into<String>) -> Self {
        Self { words: w.into(), ..Default::default() }
    }

    pub fn action(mut self, a: &str) -> Self {
        self.action = Some(a.into());
        self
    }

    pub fn command(mut self, c: impl Into<String>) -> Self {
        self.command = Some(c.into());
        self
    }
}

/// One checked item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// The short name: typed to override the item, a key in `--json`.
    pub name: String,
    /// What the item asks, in words.
    pub title: String,
    pub status: Status,
    /// Why it passes or fails (or is off), in words.
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<Fix>,
    /// When this result was found, when older than the report (an extra command's result
    /// kept between runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_unix: Option<u64>,
}

impl Item {
    pub fn pass(name: &str, title: &str, reason: impl Into<String>) -> Self {
        Self::new(name, title, Status::Pass, reason.into(), None)
    }

    pub fn fail(name: &str, title: &str, reason: impl Into<String>, fix: Fix) -> Self {
        Self::new(name, title, Status::Fail, reason.into(), Some(fix))
    }

    pub fn off(name: &str, title: &str, reason: impl Into<String>) -> Self {
        Self::new(name, title, Status::Off, reason.into(), None)
    }

    fn new(name: &str, title: &str, status: Status, reason: String, fix: Option<Fix>) -> Self {
        Self { name: name.into(), title: title.into(), status, reason, fix, checked_unix: None }
    }
}

/// The whole checklist at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub taken_unix: u64,
    pub workspace: String,
    /// Every enabled item passes.
    pub ok: bool,
    /// Names of the failing items.
    pub failing: Vec<String>,
    pub items: Vec<Item>,
}

impl Report {
    pub fn new(taken_unix: u64, workspace: String, items: Vec<Item>) -> Self {
        let failing: Vec<String> = items.iter().filter(|i| i.status == Status::Fail).map(|i| i.name.clone()).collect();
        Self { taken_unix, workspace, ok: failing.is_empty(), failing, items }
    }

    pub fn item(&self, name: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.name == name)
    }

    /// The text form of `opsconsole shutdown-check`.
    pub fn to_text(&self) -> String {
        let mut out = format!("pre-shutdown checklist for {}\n", self.workspace);
        for i in &self.items {
            let mark = match i.status {
                Status::Pass => "✓",
                Status::Fail => "✗",
                Status::Off => "-",
            };
            out.push_str(&format!("{mark} {:<13} {}\n", i.name, i.reason));
            if let (Status::Fail, Some(fix)) = (i.status, &i.fix) {
                let cmd = fix
                    .command
                    .as_ref()
                    .filter(|c| !fix.words.contains(c.as_str()))
                    .map(|c| format!(" (`{c}`)"))
                    .unwrap_or_default();
                out.push_str(&format!("  {:<13} fix: {}{cmd}\n", "", fix.words));
            }
        }
        if self.ok {
            out.push_str("every item passes: nothing is lost by shutting down\n");
        } else {
            out.push_str(&format!(
                "{} failing: {} (in the console, `x` then shutdown asks for each failing item's name to override it)\n",
                self.failing.len(),
                self.failing.join(", ")
            ));
        }
        out
    }
}
