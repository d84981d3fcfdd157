//! The report sink (to come, with the "Report" issue): where appliances will
//! post their reports (popularity, health, inventory) as `eddy-proto` wire
//! messages, for the control plane to check, keep and count.
//!
//! Owns, once built: the `/v1/report/{appliance}` route's answers and what is
//! kept of each report. Today it owns nothing and the route answers 404 like
//! any unknown path. It must never change a manifest by itself: reports feed
//! the catalogue through an explicit step, so a hostile report cannot steer
//! fills.

/// The path prefix reports will be posted to.
pub const PATH_PREFIX: &str = "/v1/report/";
