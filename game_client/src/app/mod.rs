//! The process around the plugins: command line, multi-window demo, ECS
//! benchmark, embedded server and its bots, timed exit and screenshots.

pub mod auto_exit;
pub mod bench;
pub mod bots;
pub mod cli;
pub mod demo;
pub mod embedded_server;
pub mod headless;
pub mod window_layout;
