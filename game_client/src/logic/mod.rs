//! What a client does without a window ([`crate::GameLogicPlugins`]).

pub mod history;
pub mod interpolation;
pub mod local_input;
pub mod math_panel;
pub mod overview;
pub mod player_index;
pub mod players;
pub mod schedules;
pub mod stats;
