//! Fuzz target: arbitrary bytes as the body of a request to one of the API's methods,
//! through the screening every request passes (see `backstop_api::fuzz`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    backstop_api::fuzz::screen_any(data);
});
