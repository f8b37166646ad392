//! placeholder
pub const DOMAIN_NAME: &str = "BackstopVault";
pub const DOMAIN_VERSION: &str = "1";
pub use alloy;
