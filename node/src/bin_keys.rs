//! `backstop keys`: creates a node's keys, and puts a guardian key in an encrypted keystore
//! or a PKCS#11 token (generated there, or imported from a plain key file).
//!
//! Passwords and PINs are read from a file (mode 0600, one line) or an environment variable,
//! never from the command line (which other users can see in the process list).

use anyhow::Context;
use backstop_config::SecretSource;
use backstop_config::keys;
use backstop_signer::{TokenSigner, TokenSpec, keystore};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Writes a new ed25519 identity and a secp256k1 signer key (files of mode 0600).
    Generate {
        /// Directory to write `identity.key` and `signer.key` into.
        #[arg(long)]
        out: PathBuf,
        /// Name for the printed `[[consortium.nodes]]` snippet.
        #[arg(long, default_value = "node")]
        name: String,
    },
    /// A guardian key in an Ethereum keystore v3 file (scrypt, AES-128-CTR).
    Keystore {
        #[command(subcommand)]
        command: KeystoreCommand,
    },
    /// A guardian key in a PKCS#11 token (an HSM; SoftHSM2 for tests).
    Pkcs11 {
        #[command(subcommand)]
        command: Pkcs11Command,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeystoreCommand {
    /// Generates a new key into a new keystore file.
    New {
        /// The keystore file to create (never overwritten).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        password: Passphrase,
    },
    /// Encrypts an existing plain key file (`signer.key`) into a new keystore file.
    Import {
        /// The plain key file.
        #[arg(long)]
        key: PathBuf,
        /// The keystore file to create (never overwritten).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        password: Passphrase,
    },
}

#[derive(Subcommand, Debug)]
pub enum Pkcs11Command {
    /// Generates a new key in the token (sensitive, not extractable).
    New {
        #[command(flatten)]
        token: Token,
    },
    /// Imports an existing plain key file (`signer.key`) into the token.
    Import {
        /// The plain key file.
        #[arg(long)]
        key: PathBuf,
        #[command(flatten)]
        token: Token,
    },
    /// Opens the key, signs a test digest and prints its address.
    Show {
        #[command(flatten)]
        token: Token,
    },
}

/// Where a password (or PIN) comes from: exactly one of a file and a variable.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct Passphrase {
    /// File holding the password on one line (mode 0600).
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// Environment variable holding the password.
    #[arg(long)]
    password_env: Option<String>,
}

/// A token key and the user PIN that opens it.
#[derive(Args, Debug)]
pub struct Token {
    /// The PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so).
    #[arg(long)]
    module: PathBuf,
    /// The token's label.
    #[arg(long)]
    token: String,
    /// The key's label.
    #[arg(long)]
    label: String,
    /// File holding the user PIN on one line (mode 0600).
    #[arg(long, conflicts_with = "pin_env", required_unless_present = "pin_env")]
    pin_file: Option<PathBuf>,
    /// Environment variable holding the user PIN.
    #[arg(long)]
    pin_env: Option<String>,
}

impl Passphrase {
    fn read(&self) -> anyhow::Result<String> {
        read_secret(self.password_file.as_deref(), self.password_env.as_deref())
    }
}

impl Token {
    fn spec(&self) -> TokenSpec {
        TokenSpec {
            module: self.module.clone(),
            token: self.token.clone(),
            key: self.label.clone(),
        }
    }

    fn pin(&self) -> anyhow::Result<String> {
        read_secret(self.pin_file.as_deref(), self.pin_env.as_deref())
    }

    fn snippet(&self) -> String {
        let pin = match (&self.pin_file, &self.pin_env) {
            (Some(f), _) => format!("pin_file = {:?}", f.display().to_string()),
            (None, Some(v)) => format!("pin_env = {v:?}"),
            (None, None) => String::new(),
        };
        format!(
            "[node.signer_pkcs11]\nmodule = {:?}\ntoken = {:?}\nkey = {:?}\n{pin}",
            self.module.display().to_string(),
            self.token,
            self.label
        )
    }
}

fn read_secret(file: Option<&Path>, env: Option<&str>) -> anyhow::Result<String> {
    let src = match (file, env) {
        (Some(f), None) => SecretSource::File(f.to_owned()),
        (None, Some(v)) => SecretSource::Env(v.to_owned()),
        _ => anyhow::bail!("give exactly one of a file and an environment variable"),
    };
    Ok(keys::read_passphrase(&src)?)
}

/// Runs one `backstop keys` command.
pub fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Generate { out, name } => generate(&out, &name),
        KeysCommand::Keystore { command } => run_keystore(command),
        KeysCommand::Pkcs11 { command } => run_pkcs11(command),
    }
}

fn generate(out: &Path, name: &str) -> anyhow::Result<()> {
    let keys =
        keys::generate(out).with_context(|| format!("generating keys in {}", out.display()))?;
    println!("identity   {}", keys.identity_path.display());
    println!("signer     {}", keys.signer_path.display());
    println!("peer id    {}", keys.peer_id);
    println!("public key {}", keys.public_key_hex());
    println!("guardian   {}", keys.guardian);
    println!();
    println!("{}", keys.node_snippet(name, &[]));
    Ok(())
}

fn run_keystore(command: KeystoreCommand) -> anyhow::Result<()> {
    let (key, out, password) = match command {
        KeystoreCommand::New { out, password } => (keys::random_signer()?, out, password),
        KeystoreCommand::Import { key, out, password } => (keys::load_signer(&key)?, out, password),
    };
    let mut pw = password.read()?;
    let written = keystore::create(&out, &key, pw.as_bytes());
    keys::wipe_string(&mut pw);
    written?;
    println!("keystore   {}", out.display());
    println!("guardian   {}", key.address());
    println!();
    println!("[node]");
    println!("signer_keystore_file = {:?}", out.display().to_string());
    match (&password.password_file, &password.password_env) {
        (Some(f), _) => println!(
            "signer_keystore_password_file = {:?}",
            f.display().to_string()
        ),
        (None, Some(v)) => println!("signer_keystore_password_env = {v:?}"),
        (None, None) => {}
    }
    Ok(())
}

fn run_pkcs11(command: Pkcs11Command) -> anyhow::Result<()> {
    let (token, address) = match command {
        Pkcs11Command::New { token } => {
            let address = with_pin(&token, TokenSigner::generate)?;
            (token, address)
        }
        Pkcs11Command::Import { key, token } => {
            let plain = keys::load_signer(&key)?;
            let address = with_pin(&token, |spec, pin| TokenSigner::import(spec, pin, &plain))?;
            (token, address)
        }
        Pkcs11Command::Show { token } => {
            let address = with_pin(&token, |spec, pin| {
                TokenSigner::open(spec, pin).map(|t| t.address())
            })?;
            (token, address)
        }
    };
    println!("guardian   {address}");
    println!(
        "held by    PKCS#11 token {:?}, key {:?}",
        token.token, token.label
    );
    println!();
    println!("{}", token.snippet());
    Ok(())
}

fn with_pin<T>(
    token: &Token,
    f: impl FnOnce(&TokenSpec, &str) -> Result<T, backstop_signer::SignerError>,
) -> anyhow::Result<T> {
    let mut pin = token.pin()?;
    let result = f(&token.spec(), &pin);
    keys::wipe_string(&mut pin);
    Ok(result?)
}
