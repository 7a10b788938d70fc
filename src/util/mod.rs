//! Small pieces every layer may use and that use nothing of imgpull's:
//! cancellation, filesystem helpers, secrets that never print, network
//! text made fit to print, UTC timestamps and human units.

pub mod cancel;
pub mod fs;
pub mod secret;
pub mod text;
pub mod time;
pub mod units;
