//! The `backstop` binary. For now it only reports its version and the contract
//! version it was built against; the node itself is assembled in later work.

fn main() {
    let arg = std::env::args().nth(1);
    match arg.as_deref() {
        None | Some("version") | Some("--version") => {
            println!(
                "backstop {} (vault EIP-712 domain {} v{})",
                env!("CARGO_PKG_VERSION"),
                backstop_contracts::DOMAIN_NAME,
                backstop_contracts::DOMAIN_VERSION
            );
        }
        Some(other) => {
            eprintln!("backstop: unknown command '{other}' (available: version)");
            std::process::exit(2);
        }
    }
}
