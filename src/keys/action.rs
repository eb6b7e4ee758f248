//! Every user intent is an [`Action`]. Keys become actions only through the keymap
//! (`[keys]` in `opsconsole.toml`), so the help overlay, generated from the same table,
//! cannot go stale.

use serde::{Deserialize, Serialize};

/// Declares the actions once: the enum, its snake_case config name, its default keys and
/// the help text. Adding an action is one line here.
macro_rules! actions {
    ($( $variant:ident => $name:ident, [$($key:literal),*], $help:literal; )*) => {
        /// Something the user asked for, independent of which key asked.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Action {
            $( $variant, )*
        }

        impl Action {
            /// All actions, in help-overlay order.
            pub const ALL: &'static [Action] = &[$(Action::$variant,)*];

            /// The name used in the `[keys]` table of the config file.
            pub fn name(self) -> &'static str {
                match self { $(Action::$variant => stringify!($name),)* }
            }

            /// One line for the help overlay.
            pub fn help(self) -> &'static str {
                match self { $(Action::$variant => $help,)* }
            }
        }

        /// The `[keys]` section: for each action, the keys bound to it.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct KeysConfig {
            $( pub $name: Vec<String>, )*
        }

        impl Default for KeysConfig {
            fn default() -> Self {
                Self { $( $name: vec![$($key.to_string()),*], )* }
            }
        }

        impl KeysConfig {
            /// Each action with the key strings bound to it.
            pub fn bindings(&self) -> Vec<(Action, &[String])> {
                vec![$( (Action::$variant, self.$name.as_slice()), )*]
            }
        }
    };
}

actions! {
    Help => help, ["?"], "show or hide this help";
    Quit => quit, ["q", "ctrl-c"], "quit (asks first while a job is running)";
    Cancel => cancel, ["esc"], "close the overlay or dialog";
    Confirm => confirm, ["y", "enter"], "answer yes in a dialog";
    Deny => deny, ["n"], "answer no in a dialog";
    FocusNext => focus_next, ["tab"], "focus the next panel";
    FocusPrev => focus_prev, ["backtab"], "focus the previous panel";
    FocusGpu => focus_gpu, ["1"], "focus the GPU panel";
    FocusDisk => focus_disk, ["2"], "focus the Disk panel";
    FocusLog => focus_log, ["3"], "focus the Log panel";
    FocusUploads => focus_uploads, ["4"], "focus the Uploads panel";
    Zoom => zoom, ["z"], "zoom the focused panel to the whole screen, or back (esc too)";
    Up => up, ["up", "k"], "move up in the focused panel";
    Down => down, ["down", "j"], "move down in the focused panel";
    PageUp => page_up, ["pageup"], "page up in the focused panel";
    PageDown => page_down, ["pagedown"], "page down in the focused panel";
    Refresh => refresh, ["ctrl-r"], "sample every collector now";
    Details => details, ["enter"], "open: the GPU process, upload queue or row, a log line in full";
    KillProcess => kill_process, ["K"], "SIGTERM the selected GPU process (asks)";
    GpuSort => gpu_sort, ["O"], "GPU panel: sort processes by VRAM, age (oldest first) or pid";
    LogFollow => log_follow, ["f"], "log: pause or resume following";
    LogTop => log_top, ["g", "home"], "log: jump to the first line";
    LogEnd => log_end, ["G", "end"], "log: jump to the end and follow";
    LogSearch => log_search, ["/"], "log: search (enter to find, esc to cancel)";
    LogNextMatch => log_next_match, ["n"], "log: next search match";
    LogPrevMatch => log_prev_match, ["N"], "log: previous search match";
    LogErrorsOnly => log_errors_only, ["e"], "log: show only error lines, or all";
    LogWrap => log_wrap, ["w"], "log: wrap long lines, or cut them with …";
    LogLeft => log_left, ["left"], "log: scroll sideways to the left (lines not wrapped)";
    LogRight => log_right, ["right"], "log: scroll sideways to the right (lines not wrapped)";
    LogSwitch => log_switch, ["L"], "log: choose another log (a newer run)";
    SyncNow => sync_now, ["s"], "sync every upload level now";
    RetryFailed => retry_failed, ["R"], "retry failed uploads";
    CancelUpload => cancel_upload, ["c"], "cancel the upload in flight (Uploads focused)";
    Prune => prune, ["p"], "prune plan: what to delete and why";
    IncludeUnsynced => include_unsynced, ["u"], "prune screen: include unconfirmed copies";
    StopPrune => stop_prune, ["C"], "stop the running prune (after the item in hand)";
    Checklist => checklist, ["x"], "pre-shutdown checklist: what a shutdown would lose";
    Shutdown => shutdown, ["S"], "checklist: shut down (asks; failing items need overrides)";
    OverrideItem => override_item, ["o"], "checklist: override a failing item by typing its name";
    Bundle => bundle, ["b"], "bundle the newest experiment's committed code, queue it on L2";
    Import => import, ["i"], "import the cluster's log from L2 into the journal";
    Resume => resume, ["r"], "resume: newest verified checkpoint (L1, L2, L3); start training";
}
