//! Mapping terminal key events to actions, through the chords the `[keys]` config names
//! (`keys::chord`).

use std::collections::HashMap;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::keys::action::{Action, KeysConfig};
use crate::keys::chord::{Key, KeyChord, Mods, display_key, parse_key};

/// The chord of a terminal key event, normalised as the config writes keys (shift folded
/// into the character). `None` for keys the config cannot name.
pub fn chord(ev: &KeyEvent) -> Option<KeyChord> {
    let key = match ev.code {
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Tab => Key::Tab,
        KeyCode::BackTab => Key::BackTab,
        KeyCode::Backspace => Key::Backspace,
        KeyCode::Delete => Key::Delete,
        KeyCode::Insert => Key::Insert,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::F(n) => Key::F(n),
        _ => return None,
    };
    let m = ev.modifiers;
    let mods = Mods {
        ctrl: m.contains(KeyModifiers::CONTROL),
        alt: m.contains(KeyModifiers::ALT),
        shift: m.contains(KeyModifiers::SHIFT),
    };
    Some(KeyChord::normalized(key, mods))
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
        Ok(Self { map: crate::keys::chord::bindings(keys)?, keys: keys.clone() })
    }

    /// The action for a key event, if any.
    pub fn action(&self, ev: &KeyEvent) -> Option<Action> {
        self.map.get(&chord(ev)?).copied()
    }

    /// Whether `ev` is one of the keys bound to `action` (dialogs use this for keys that
    /// are also bound elsewhere, such as `enter`).
    pub fn is(&self, ev: &KeyEvent, action: Action) -> bool {
        let Some(chord) = chord(ev) else { return false };
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
