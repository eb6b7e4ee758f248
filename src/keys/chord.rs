//! Key strings as written in the config (`"q"`, `"ctrl-c"`, `"pageup"`), parsed into
//! chords of the crate's own types, and the check of a whole `[keys]` table. The console
//! maps terminal events onto these chords (`app::keymap`); the config validates with them.

use std::collections::HashMap;

use super::action::{Action, KeysConfig};

/// A key, without modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    Char(char),
    Enter,
    Esc,
    Tab,
    BackTab,
    Backspace,
    Delete,
    Insert,
    Up,
    Down,
    Left,
    Right,
    Home,
    End,
    PageUp,
    PageDown,
    F(u8),
}

/// Modifiers of a chord. Shift is folded into a character (`G`, not `shift-g`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Mods {
    pub ctrl: bool,
    pub alt: bool,
    pub shift: bool,
}

/// A key with its modifiers, comparable however the terminal reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyChord {
    pub key: Key,
    pub mods: Mods,
}

impl KeyChord {
    /// A chord with shift folded in the way the config writes keys: a character carries
    /// its own case, and back-tab is shift-tab already.
    pub fn normalized(key: Key, mut mods: Mods) -> Self {
        if matches!(key, Key::Char(_) | Key::BackTab) {
            mods.shift = false;
        }
        Self { key, mods }
    }
}

/// Parses a key as written in the config: a single character, a named key, or either with
/// `ctrl-` / `alt-` / `shift-` prefixes.
pub fn parse_key(text: &str) -> Result<KeyChord, String> {
    let mut mods = Mods::default();
    let mut rest = text;
    loop {
        let lower = rest.to_ascii_lowercase();
        if rest.chars().count() > 1 && lower.starts_with("ctrl-") {
            mods.ctrl = true;
            rest = &rest[5..];
        } else if rest.chars().count() > 1 && lower.starts_with("alt-") {
            mods.alt = true;
            rest = &rest[4..];
        } else if rest.chars().count() > 1 && lower.starts_with("shift-") {
            mods.shift = true;
            rest = &rest[6..];
        } else {
            break;
        }
    }
    let mut chars = rest.chars();
    let key = match (chars.next(), chars.next()) {
        (Some(c), None) => Key::Char(if mods.ctrl { c.to_ascii_lowercase() } else { c }),
        (None, _) => return Err(format!("empty key in {text:?}")),
        _ => match rest.to_ascii_lowercase().as_str() {
            "enter" | "return" => Key::Enter,
            "esc" | "escape" => Key::Esc,
            "tab" => Key::Tab,
            "backtab" => Key::BackTab,
            "backspace" => Key::Backspace,
            "delete" | "del" => Key::Delete,
            "insert" | "ins" => Key::Insert,
            "up" => Key::Up,
            "down" => Key::Down,
            "left" => Key::Left,
            "right" => Key::Right,
            "home" => Key::Home,
            "end" => Key::End,
            "pageup" | "pgup" => Key::PageUp,
            "pagedown" | "pgdn" => Key::PageDown,
            "space" => Key::Char(' '),
            f if f.starts_with('f') && f[1..].parse::<u8>().is_ok_and(|n| (1..=24).contains(&n)) => {
                Key::F(f[1..].parse().unwrap_or(1))
            }
            _ => {
                return Err(format!(
                    "unknown key {text:?} (use a character, a name like enter, esc, tab, up, pageup, f5, or a ctrl-/alt- prefix)"
                ));
            }
        },
    };
    if matches!(key, Key::Char(_)) {
        mods.shift = false;
    }
    Ok(KeyChord { key, mods })
}

/// Writes a chord the way the help overlay shows it.
pub fn display_key(text: &str) -> String {
    match text {
        "pageup" => "PgUp".into(),
        "pagedown" => "PgDn".into(),
        "backtab" => "S-Tab".into(),
        t if t.starts_with("ctrl-") => format!("^{}", &t[5..]),
        t => t.to_string(),
    }
}

/// Actions the console cannot do without: leaving it, and answering or closing dialogs.
const REQUIRED: [Action; 4] = [Action::Quit, Action::Cancel, Action::Confirm, Action::Deny];

fn required_why(a: Action) -> &'static str {
    match a {
        Action::Quit => "the console cannot be left with a key",
        Action::Cancel => "an overlay or dialog cannot be closed",
        Action::Confirm => "a dialog (quit while a job runs, prune) cannot be answered yes",
        _ => "a dialog cannot be answered no",
    }
}

/// Dialog answers may share keys with panel actions: a dialog looks at them first.
pub fn dialog_only(a: Action) -> bool {
    matches!(a, Action::Confirm | Action::Deny)
}

/// The main keymap of a `[keys]` table: each chord to its action (dialog answers are
/// asked for by name, not through this map). Errors name the `keys.<action>` entry: a key
/// that does not parse, a key bound to two actions, a required action without a key.
pub fn bindings(keys: &KeysConfig) -> Result<HashMap<KeyChord, Action>, Vec<(String, String)>> {
    let mut map = HashMap::new();
    let mut problems = Vec::new();
    for (action, list) in keys.bindings() {
        if list.is_empty() && REQUIRED.contains(&action) {
            problems.push((
                format!("keys.{}", action.name()),
                format!("needs at least one key: without one {}", required_why(action)),
            ));
        }
        for key in list {
            match parse_key(key) {
                Ok(_) if dialog_only(action) => {}
                Ok(chord) => {
                    if let Some(prev) = map.get(&chord) {
                        let prev: &Action = prev;
                        problems.push((
                            format!("keys.{}", action.name()),
                            format!("key {key:?} is already bound to {}", prev.name()),
                        ));
                        continue;
                    }
                    map.insert(chord, action);
                }
                Err(e) => problems.push((format!("keys.{}", action.name()), e)),
            }
        }
    }
    if problems.is_empty() { Ok(map) } else { Err(problems) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_characters_names_and_prefixes() {
        let ctrl = Mods { ctrl: true, ..Mods::default() };
        assert_eq!(parse_key("ctrl-C").unwrap(), KeyChord { key: Key::Char('c'), mods: ctrl });
        assert_eq!(parse_key("G").unwrap(), KeyChord { key: Key::Char('G'), mods: Mods::default() });
        // shift is folded into a character: shift-g is g, as a terminal reports "G" with shift
        assert_eq!(parse_key("shift-g").unwrap().mods, Mods::default());
        assert_eq!(parse_key("PgDn").unwrap().key, Key::PageDown);
        assert_eq!(parse_key("f12").unwrap().key, Key::F(12));
        assert_eq!(parse_key("space").unwrap().key, Key::Char(' '));
        assert!(parse_key("f25").unwrap_err().contains("unknown key"));
        assert!(parse_key("ctrl-").unwrap_err().contains("empty key"));
    }

    #[test]
    fn a_terminal_shift_char_matches_the_configured_char() {
        let shifted = KeyChord::normalized(Key::Char('G'), Mods { shift: true, ..Mods::default() });
        assert_eq!(shifted, parse_key("G").unwrap());
        let backtab = KeyChord::normalized(Key::BackTab, Mods { shift: true, ..Mods::default() });
        assert_eq!(backtab, parse_key("backtab").unwrap());
    }

    #[test]
    fn a_table_with_a_key_twice_or_a_required_action_unbound_is_refused() {
        assert!(bindings(&KeysConfig::default()).is_ok());
        let keys = KeysConfig { quit: vec![], ..KeysConfig::default() };
        let problems = bindings(&keys).unwrap_err();
        assert!(problems.iter().any(|(k, m)| k == "keys.quit" && m.contains("needs at least one key")), "{problems:?}");
    }
}
