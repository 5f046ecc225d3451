//! The reverse tunnel shared by kas and agentk: message-order automata and the kas-side registry of
//! idle tunnels.

pub mod automaton;
pub mod call;
pub mod registry;
