//! The input driver of the API's request fuzz target (`node/crates/api/fuzz`, run with
//! `testnet/fuzz`): arbitrary bytes as the body of a unary request to one of the service's
//! methods, through the screening every request passes before it reaches a service. The
//! stable counterpart is the ingress test that mutates valid requests.
//!
//! Invariant checked: screening never panics, and refuses only with INVALID_ARGUMENT (or
//! OUT_OF_RANGE for a message declared larger than the size limit).

use tonic::Code;

use crate::ingress::{METHODS, screen};

/// Screens `data[1..]` as the request body of the method `data[0]` picks; panics if the
/// answer is not one screening may give.
pub fn screen_any(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let method = METHODS[usize::from(pick) % METHODS.len()];
    if let Err(status) = screen(method, body) {
        assert!(
            matches!(status.code(), Code::InvalidArgument | Code::OutOfRange),
            "{method}: {status:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingress::check_message;

    #[test]
    fn every_method_is_screened() {
        for m in METHODS {
            assert!(check_message(m, &[]).is_some(), "{m}");
        }
    }
}
