//! What a window adds on top of the logic ([`crate::ViewPlugins`]).

pub mod camera;
pub mod hud;
pub mod indicators;
pub mod interest;
pub mod labels;
pub mod layout;
pub mod link_panel;
pub mod minimap;
pub mod overlay;
pub mod world_map;
