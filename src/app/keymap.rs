//! Parsing key strings (`"q"`, `"ctrl-c"`, `"pageup"`) and mapping key events to actions.

use std::collections::HashMap;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::{Action, KeysConfig};

/// A key with its modifiers, comparable regardless of how crossterm reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyChord {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

impl KeyChord {
    /// Normalises a terminal key event: shift is folded into the character itself.
    pub fn from_event(ev: &KeyEvent) -> Self {
        let mut mods = ev.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SHIFT);
        let code = match ev.code {
            KeyCode::Char(c) => {
                mods.remove(KeyModifiers::SHIFT);
                KeyCode::Char(c)
            }
            KeyCode::BackTab => {
                mods.remove(KeyModifiers::SHIFT);
                KeyCode::BackTab
            }
            other => other,
        };
        Self { code, mods }
    }
}

/// Parses a key as written in the config: a single character, a named key, or either with
/// `ctrl-` / `alt-` / `shift-` prefixes.
pub fn parse_key(text: &str) -> Result<KeyChord, String> {
    let mut mods = KeyModifiers::NONE;
    let mut rest = text;
    loop {
        let lower = rest.to_ascii_lowercase();
        if rest.chars().count() > 1 && lower.starts_with("ctrl-") {
            mods |= KeyModifiers::CONTROL;
            rest = &rest[5..];
        } else if rest.chars().count() > 1 && lower.starts_with("alt-") {
            mods |= KeyModifiers::ALT;
            rest = &rest[4..];
        } else if rest.chars().count() > 1 && lower.starts_with("shift-") {
            mods |= KeyModifiers::SHIFT;
            rest = &rest[6..];
        } else {
            break;
        }
    }
    let mut chars = rest.chars();
    let code = match (chars.next(), chars.next()) {
        (Some(c), None) => KeyCode::Char(if mods.contains(KeyModifiers::CONTROL) { c.to_ascii_lowercase() } else { c }),
        (None, _) => return Err(format!("empty key in {text:?}")),
        _ => match rest.to_ascii_lowercase().as_str() {
            "enter" | "return" => KeyCode::Enter,
            "esc" | "escape" => KeyCode::Esc,
            "tab" => KeyCode::Tab,
            "backtab" => KeyCode::BackTab,
            "backspace" => KeyCode::Backspace,
            "delete" | "del" => KeyCode::Delete,
            "insert" | "ins" => KeyCode::Insert,
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "pageup" | "pgup" => KeyCode::PageUp,
            "pagedown" | "pgdn" => KeyCode::PageDown,
            "space" => KeyCode::Char(' '),
            f if f.starts_with('f') && f[1..].parse::<u8>().is_ok_and(|n| (1..=24).contains(&n)) => {
                KeyCode::F(f[1..].parse().unwrap_or(1))
            }
            _ => {
                return Err(format!(
                    "unknown key {text:?} (use a character, a name like enter, esc, tab, up, pageup, f5, or a ctrl-/alt- prefix)"
                ));
            }
        },
    };
    if matches!(code, KeyCode::Char(_)) {
        mods.remove(KeyModifiers::SHIFT);
    }
    Ok(KeyChord { code, mods })
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

/// Key chords to actions, built from the `[keys]` config.
#[derive(Debug, Clone)]
pub struct KeyMap {
    map: HashMap<KeyChord, Action>,
    keys: KeysConfig,
}

impl KeyMap {
    /// Builds the map. Errors name the `keys.<action>` entry, and a key bound to two
    /// actions is an error too.
    pub fn new(keys: &KeysConfig) -> Result<Self, Vec<(String, String)>> {
        let mut map = HashMap::new();
        let mut problems = Vec::new();
        let mut owner: HashMap<KeyChord, Action> = HashMap::new();
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
                        if let Some(prev) = owner.get(&chord) {
                            problems.push((
                                format!("keys.{}", action.name()),
                                format!("key {key:?} is already bound to {}", prev.name()),
                            ));
                            continue;
                        }
                        owner.insert(chord, action);
                        map.insert(chord, action);
                    }
                    Err(e) => problems.push((format!("keys.{}", action.name()), e)),
                }
            }
        }
        if problems.is_empty() { Ok(Self { map, keys: keys.clone() }) } else { Err(problems) }
    }

    /// The action for a key event, if any.
    pub fn action(&self, ev: &KeyEvent) -> Option<Action> {
        self.map.get(&KeyChord::from_event(ev)).copied()
    }

    /// Whether `ev` is one of the keys bound to `action` (dialogs use this for keys that
    /// are also bound elsewhere, such as `enter`).
    pub fn is(&self, ev: &KeyEvent, action: Action) -> bool {
        let chord = KeyChord::from_event(ev);
        self.keys
            .bindings()
            .into_iter()
            .filter(|(a, _)| *a == action)
            .flat_map(|(_, ks)| ks.iter())
            .any(|k| parse_key(k).is_ok_and(|c| c == chord))
    }

    /// Each action with its keys as shown to the user, for the help overlay and footer.
    pub fn help_rows(&self) -> Vec<(String, Action)> {
        self.keys
            .bindings()
            .into_iter()
            .map(|(a, ks)| (ks.iter().map(|k| display_key(k)).collect::<Vec<_>>().join(" "), a))
            .collect()
    }

    /// The first key bound to an action, as shown to the user.
    pub fn first_key(&self, action: Action) -> Option<String> {
        self.keys
            .bindings()
            .into_iter()
            .find(|(a, _)| *a == action)
            .and_then(|(_, ks)| ks.first().map(|k| display_key(k)))
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
fn dialog_only(a: Action) -> bool {
    matches!(a, Action::Confirm | Action::Deny)
}
