//! Parity of the Rust EIP-712 digests and signature packing with the deployed vault, on
//! real anvil chains: the digests equal the vault's own `hash*` views, a fixed vector
//! equals what `cast` signs from hand-written typed data, signatures of 3 of 4 guardians
//! pass `registerDraw` and `releaseLeg`, and every bad case reverts with its custom error.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use alloy::primitives::{Bytes, U256, address, b256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use backstop_contracts::bindings::BackstopVault::BackstopVaultErrors as E;
use backstop_contracts::bindings::{BackstopVault, IBackstopVault};
use backstop_contracts::eip712::{
    GuardianSignature, Signable, SignatureError, VaultId, pack_signatures, sign_digest,
};
use backstop_contracts::tools;
use common::*;

/// Asserts that an `eth_call` reverted with exactly `expected`.
fn assert_reverts<T>(result: Result<T, alloy::contract::Error>, expected: E) {
    match result {
        Ok(_) => panic!("expected revert {expected:?}, the call succeeded"),
        Err(err) => {
            let decoded = err.as_decoded_interface_error::<E>();
            assert_eq!(decoded, Some(expected), "revert data of {err:?}");
        }
    }
}

fn sample_draw(chain: &Chain, remote: &Chain) -> IBackstopVault::Draw {
    IBackstopVault::Draw {
        member: member_id(),
        seq: 7,
        gap: U256::from(123_456_789u64),
        amount: U256::from(100_000_000u64),
        legs: vec![
            IBackstopVault::Leg {
                chainId: chain.chain_id,
                vault: chain.vault,
                amount: U256::from(60_000_000u64),
            },
            IBackstopVault::Leg {
                chainId: remote.chain_id,
                vault: remote.vault,
                amount: U256::from(40_000_000u64),
            },
        ],
        deadline: 1_900_000_000,
        legDeadline: 1_900_086_400,
    }
}

#[tokio::test]
async fn rust_digests_equal_the_vaults_own_hashes() {
    let c = Consortium::start().await;
    let vault = c.home.vault();
    let id = c.home.id();
    let deadline = 1_900_000_000u64;

    let mut draw = sample_draw(&c.home, &c.remote);
    assert_eq!(
        draw.digest(&id),
        vault.hashDraw(draw.clone()).call().await.unwrap()
    );
    draw.legs.truncate(1);
    assert_eq!(
        draw.digest(&id),
        vault.hashDraw(draw.clone()).call().await.unwrap()
    );
    draw.legs.clear();
    assert_eq!(
        draw.digest(&id),
        vault.hashDraw(draw.clone()).call().await.unwrap()
    );

    let leg = IBackstopVault::LegRelease {
        drawHash: keccak256("draw"),
        member: member_id(),
        seq: 3,
        amount: U256::from(42u64),
        deadline,
    };
    assert_eq!(
        leg.digest(&id),
        vault.hashLegRelease(leg.clone()).call().await.unwrap()
    );

    let action_id = keccak256("action");
    let freeze = IBackstopVault::FreezeMember {
        member: member_id(),
        id: action_id,
        deadline,
    };
    assert_eq!(
        freeze.digest(&id),
        vault.hashFreezeMember(freeze.clone()).call().await.unwrap()
    );
    let unfreeze = IBackstopVault::UnfreezeMember {
        member: member_id(),
        id: action_id,
        deadline,
    };
    assert_eq!(
        unfreeze.digest(&id),
        vault
            .hashUnfreezeMember(unfreeze.clone())
            .call()
            .await
            .unwrap()
    );
    let pause = IBackstopVault::Pause {
        id: action_id,
        deadline,
    };
    assert_eq!(
        pause.digest(&id),
        vault.hashPause(pause.clone()).call().await.unwrap()
    );
    let unpause = IBackstopVault::Unpause {
        id: action_id,
        deadline,
    };
    assert_eq!(
        unpause.digest(&id),
        vault.hashUnpause(unpause.clone()).call().await.unwrap()
    );
    let alert = IBackstopVault::RaiseAlert {
        subject: member_id(),
        level: 2,
        id: action_id,
        deadline,
    };
    assert_eq!(
        alert.digest(&id),
        vault.hashRaiseAlert(alert.clone()).call().await.unwrap()
    );
    let clear = IBackstopVault::ClearAlert {
        subject: member_id(),
        id: action_id,
        deadline,
    };
    assert_eq!(
        clear.digest(&id),
        vault.hashClearAlert(clear.clone()).call().await.unwrap()
    );
    let set_member = IBackstopVault::SetMember {
        member: member_id(),
        recipient: recipient(),
        homeChainId: 31337,
        cap: 5u128,
        deductible: 1u128,
        coverageLimit: 50u128,
        coverageWindow: 86_400,
        id: action_id,
        deadline,
    };
    assert_eq!(
        set_member.digest(&id),
        vault
            .hashSetMember(set_member.clone())
            .call()
            .await
            .unwrap()
    );
    let set_limits = IBackstopVault::SetLimits {
        bucketCapacity: 10u128,
        refillPerSecond: 1u128,
        reserveFloor: U256::from(3u64),
        withdrawCooldown: 60,
        emergencyDuration: 600,
        id: action_id,
        deadline,
    };
    assert_eq!(
        set_limits.digest(&id),
        vault
            .hashSetLimits(set_limits.clone())
            .call()
            .await
            .unwrap()
    );
    let rotate = IBackstopVault::RotateGuardians {
        guardians: c.keys.iter().map(|k| k.address()).collect(),
        threshold: 3,
        pauseThreshold: 2,
        id: action_id,
        deadline,
    };
    assert_eq!(
        rotate.digest(&id),
        vault
            .hashRotateGuardians(rotate.clone())
            .call()
            .await
            .unwrap()
    );

    // The domain itself, and the digest of one struct under another vault differs.
    assert_eq!(
        id.domain().separator(),
        vault.domainSeparator().call().await.unwrap()
    );
    assert_ne!(pause.digest(&id), pause.digest(&c.remote.id()));
}

/// Typed data written out by hand, as a wallet or `cast` receives it: an independent
/// statement of the type strings.
fn draw_typed_data(vault: &VaultId, draw: &IBackstopVault::Draw) -> serde_json::Value {
    let legs: Vec<serde_json::Value> = draw
        .legs
        .iter()
        .map(|l| {
            serde_json::json!({
                "chainId": l.chainId,
                "vault": l.vault.to_string(),
                "amount": l.amount.to_string(),
            })
        })
        .collect();
    serde_json::json!({
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"}
            ],
            "Draw": [
                {"name": "member", "type": "bytes32"},
                {"name": "seq", "type": "uint64"},
                {"name": "gap", "type": "uint256"},
                {"name": "amount", "type": "uint256"},
                {"name": "legs", "type": "Leg[]"},
                {"name": "deadline", "type": "uint64"},
                {"name": "legDeadline", "type": "uint64"}
            ],
            "Leg": [
                {"name": "chainId", "type": "uint64"},
                {"name": "vault", "type": "address"},
                {"name": "amount", "type": "uint256"}
            ]
        },
        "primaryType": "Draw",
        "domain": {
            "name": "BackstopVault",
            "version": "1",
            "chainId": vault.chain_id,
            "verifyingContract": vault.address.to_string()
        },
        "message": {
            "member": draw.member.to_string(),
            "seq": draw.seq,
            "gap": draw.gap.to_string(),
            "amount": draw.amount.to_string(),
            "legs": legs,
            "deadline": draw.deadline,
            "legDeadline": draw.legDeadline
        }
    })
}

#[test]
fn fixed_draw_vector_equals_cast() {
    let home = VaultId {
        chain_id: 31337,
        address: address!("0x5FbDB2315678afecb367f032d93F642f64180aa3"),
    };
    let remote = address!("0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512");
    let draw = IBackstopVault::Draw {
        member: keccak256("perp-dex-a"),
        seq: 7,
        gap: U256::from(123_456_789u64),
        amount: U256::from(100_000_000u64),
        legs: vec![
            IBackstopVault::Leg {
                chainId: 31337,
                vault: home.address,
                amount: U256::from(60_000_000u64),
            },
            IBackstopVault::Leg {
                chainId: 31338,
                vault: remote,
                amount: U256::from(40_000_000u64),
            },
        ],
        deadline: 1_900_000_000,
        legDeadline: 1_900_086_400,
    };
    let digest = draw.digest(&home);
    // Pinned so that any change of the signing format is a deliberate one.
    assert_eq!(
        digest,
        b256!("0x6dd38fff80af2e79023e8f962228ede6bececbd71dca121f791d86529e466520"),
        "Draw digest changed"
    );

    // cast signs the hand-written typed data; ECDSA signatures are deterministic
    // (RFC 6979), so equal signatures by one key mean equal digests.
    let key = PrivateKeySigner::from_bytes(&keccak256("cast vector key")).unwrap();
    let ours = sign_digest(&key, digest).unwrap();
    let dir = std::env::temp_dir().join(format!("backstop-cast-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("draw.json");
    std::fs::write(&file, draw_typed_data(&home, &draw).to_string()).unwrap();
    let out = std::process::Command::new(tools::tool("cast").unwrap())
        .args(["wallet", "sign", "--private-key"])
        .arg(key.to_bytes().to_string())
        .args(["--data", "--from-file"])
        .arg(&file)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        out.status.success(),
        "cast failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Bytes = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(theirs.as_ref(), ours.signature.as_bytes().as_slice());
}

#[test]
fn packing_sorts_signers_and_refuses_duplicates() {
    let keys = guardian_keys(4);
    let digest = keccak256("digest");
    // Sign in descending order; the blob must come out ascending.
    let sigs: Vec<GuardianSignature> = keys
        .iter()
        .rev()
        .map(|k| sign_digest(k, digest).unwrap())
        .collect();
    let packed = pack_signatures(&sigs).unwrap();
    assert_eq!(packed.len(), 4 * 65);
    for (i, key) in keys.iter().enumerate() {
        let chunk = &packed[i * 65..(i + 1) * 65];
        let sig = alloy::signers::Signature::from_raw(chunk).unwrap();
        assert_eq!(
            sig.recover_address_from_prehash(&digest).unwrap(),
            key.address()
        );
        assert!(chunk[64] == 27 || chunk[64] == 28, "v is 27 or 28");
    }

    let dup = vec![sigs[0], sigs[1], sigs[0]];
    assert_eq!(
        pack_signatures(&dup),
        Err(SignatureError::DuplicateSigner(sigs[0].signer))
    );

    assert!(sigs[0].verify(digest).is_ok());
    let wrong = GuardianSignature {
        signer: keys[0].address(),
        signature: sigs[1].signature,
    };
    assert!(matches!(
        wrong.verify(digest),
        Err(SignatureError::WrongSigner { .. })
    ));
}

/// The `SetMember` type string the bindings derive is the one the vault hashes (the digest
/// parity above checks the values; this names the fields and their order for the node team).
#[test]
fn set_member_type_string_has_the_coverage_fields() {
    use alloy::sol_types::SolStruct;
    assert_eq!(
        IBackstopVault::SetMember::eip712_encode_type(),
        "SetMember(bytes32 member,address recipient,uint64 homeChainId,uint128 cap,\
         uint128 deductible,uint128 coverageLimit,uint64 coverageWindow,bytes32 id,uint64 deadline)"
    );
}

/// The coverage window on real chains: the home vault counts the whole draw, the remote vault
/// its leg, each refuses with `CoverageExceeded`, and `setMember` refuses a bad window with
/// `InvalidCoverage`.
#[tokio::test]
async fn coverage_window_refuses_with_its_custom_errors() {
    let c = Consortium::start().await;
    let signers = &c.keys[..3];
    let mut spec = MemberSpec::new(0, c.home.chain_id);
    spec.coverage_limit = (1_000 * UNIT).into();
    spec.coverage_window = 3_600;
    c.home.set_member(&c.keys, &spec).await;
    spec.coverage_limit = (300 * UNIT).into();
    c.remote.set_member(&c.keys, &spec).await;
    let record = c.home.vault().member(member_id()).call().await.unwrap();
    assert_eq!(record.coverageLimit, u128::from(1_000 * UNIT));
    assert_eq!(record.coverageWindow, 3_600);

    // Home: 600 + 400 = the whole limit, counted at registration.
    let draw = c.draw(600 * UNIT, 400 * UNIT).await;
    let receipt = mined(
        c.home
            .vault()
            .registerDraw(draw.clone(), sign_all(&draw, &c.home.id(), signers)),
    )
    .await;
    assert!(receipt.status());
    assert_eq!(
        c.home
            .vault()
            .coverageAvailable(member_id())
            .call()
            .await
            .unwrap(),
        U256::ZERO
    );
    let use_ = c
        .home
        .vault()
        .coverageUse(member_id())
        .call()
        .await
        .unwrap();
    assert_eq!(
        use_.current,
        alloy::primitives::aliases::U96::from(1_000 * UNIT)
    );
    let next = IBackstopVault::Draw {
        seq: 1,
        ..c.draw(1, 0).await
    };
    assert_reverts(
        c.home
            .vault()
            .registerDraw(next.clone(), sign_all(&next, &c.home.id(), signers))
            .call()
            .await,
        E::CoverageExceeded(BackstopVault::CoverageExceeded {
            member: member_id(),
            amount: U256::from(1),
            available: U256::ZERO,
        }),
    );

    // Remote: the 400 leg is above the remote vault's 300 limit.
    let release = c.leg_release(draw.digest(&c.home.id()), 400 * UNIT).await;
    assert_reverts(
        c.remote
            .vault()
            .releaseLeg(release.clone(), sign_all(&release, &c.remote.id(), signers))
            .call()
            .await,
        E::CoverageExceeded(BackstopVault::CoverageExceeded {
            member: member_id(),
            amount: U256::from(400 * UNIT),
            available: U256::from(300 * UNIT),
        }),
    );

    // setMember refuses a zero window.
    let bad = IBackstopVault::SetMember {
        member: member_id(),
        recipient: recipient(),
        homeChainId: c.home.chain_id,
        cap: MEMBER_CAP.into(),
        deductible: MEMBER_DEDUCTIBLE.into(),
        coverageLimit: 1u128,
        coverageWindow: 0,
        id: keccak256("bad coverage"),
        deadline: c.home.deadline().await,
    };
    assert_reverts(
        c.home
            .vault()
            .setMember(bad.clone(), sign_all(&bad, &c.home.id(), signers))
            .call()
            .await,
        E::InvalidCoverage(BackstopVault::InvalidCoverage {
            limit: 1,
            window: 0,
        }),
    );
}

#[tokio::test]
async fn three_of_four_guardians_register_on_home_and_release_on_remote() {
    let c = Consortium::start().await;
    let signers = &c.keys[1..4];
    let draw = c.draw(600 * UNIT, 400 * UNIT).await;
    let sigs = sign_all(&draw, &c.home.id(), signers);

    let before_home = c.home.balance_of(recipient()).await;
    let receipt = mined(c.home.vault().registerDraw(draw.clone(), sigs.clone())).await;
    assert!(receipt.status());
    println!("gas: registerDraw 3-of-4, 2 legs: {}", receipt.gas_used);
    assert_eq!(
        c.home.balance_of(recipient()).await - before_home,
        U256::from(600 * UNIT)
    );
    let draw_hash = draw.digest(&c.home.id());
    assert_eq!(
        c.home.vault().drawOf(member_id(), 0).call().await.unwrap(),
        draw_hash
    );
    assert_eq!(c.home.vault().nextSeq(member_id()).call().await.unwrap(), 1);
    let registered = receipt
        .decoded_log::<BackstopVault::DrawRegistered>()
        .expect("DrawRegistered emitted");
    assert_eq!(registered.drawHash, draw_hash);
    assert_eq!(registered.legs, draw.legs);

    // The same registration again is refused: the home vault takes one draw per key.
    assert_reverts(
        c.home.vault().registerDraw(draw.clone(), sigs).call().await,
        E::DrawAlreadyRegistered(BackstopVault::DrawAlreadyRegistered {
            member: member_id(),
            seq: 0,
            registered: draw_hash,
        }),
    );

    let release = c.leg_release(draw_hash, 400 * UNIT).await;
    let leg_sigs = sign_all(&release, &c.remote.id(), signers);
    let before_remote = c.remote.balance_of(recipient()).await;
    let receipt = mined(
        c.remote
            .vault()
            .releaseLeg(release.clone(), leg_sigs.clone()),
    )
    .await;
    assert!(receipt.status());
    println!("gas: releaseLeg 3-of-4: {}", receipt.gas_used);
    assert_eq!(
        c.remote.balance_of(recipient()).await - before_remote,
        U256::from(400 * UNIT)
    );
    assert_eq!(
        c.remote
            .vault()
            .drawOf(member_id(), 0)
            .call()
            .await
            .unwrap(),
        draw_hash
    );
    assert_reverts(
        c.remote
            .vault()
            .releaseLeg(release.clone(), leg_sigs)
            .call()
            .await,
        E::LegAlreadyPaid(BackstopVault::LegAlreadyPaid {
            member: member_id(),
            seq: 0,
            settled: draw_hash,
        }),
    );

    // A fourth signature costs little more (the leg of the member's next incident).
    let second = IBackstopVault::LegRelease {
        drawHash: keccak256("another registered draw"),
        seq: 1,
        ..release
    };
    let all_sigs = sign_all(&second, &c.remote.id(), &c.keys);
    let receipt = mined(c.remote.vault().releaseLeg(second, all_sigs)).await;
    assert!(receipt.status());
    println!("gas: releaseLeg 4-of-4: {}", receipt.gas_used);
}

#[tokio::test]
async fn bad_signatures_revert_with_their_custom_errors() {
    let c = Consortium::start().await;
    let vault = c.home.vault();
    let draw = c.draw(600 * UNIT, 400 * UNIT).await;
    let id = c.home.id();
    let digest = draw.digest(&id);
    let sig = |k: &PrivateKeySigner| sign_digest(k, digest).unwrap().signature.as_bytes();
    let concat = |parts: &[[u8; 65]]| -> Bytes { parts.concat().into() };
    let k = &c.keys;

    // Below threshold: 2 of 4.
    assert_reverts(
        vault
            .registerDraw(draw.clone(), sign_all(&draw, &id, &k[..2]))
            .call()
            .await,
        E::InsufficientSignatures(BackstopVault::InsufficientSignatures {
            given: U256::from(2),
            required: U256::from(3),
        }),
    );
    // Duplicate signer.
    assert_reverts(
        vault
            .registerDraw(draw.clone(), concat(&[sig(&k[0]), sig(&k[1]), sig(&k[1])]))
            .call()
            .await,
        E::DuplicateSigner(BackstopVault::DuplicateSigner {
            signer: k[1].address(),
        }),
    );
    // Unsorted signers.
    assert_reverts(
        vault
            .registerDraw(draw.clone(), concat(&[sig(&k[0]), sig(&k[2]), sig(&k[1])]))
            .call()
            .await,
        E::SignersNotAscending(BackstopVault::SignersNotAscending {
            previous: k[2].address(),
            signer: k[1].address(),
        }),
    );
    // A signature that does not recover (v = 29).
    let mut broken = sig(&k[0]);
    broken[64] = 29;
    assert_reverts(
        vault
            .registerDraw(draw.clone(), concat(&[broken, sig(&k[1]), sig(&k[2])]))
            .call()
            .await,
        E::InvalidSignature(BackstopVault::InvalidSignature { index: U256::ZERO }),
    );
    // A truncated blob.
    assert_reverts(
        vault
            .registerDraw(draw.clone(), Bytes::from(vec![1u8; 64]))
            .call()
            .await,
        E::SignatureLengthInvalid(BackstopVault::SignatureLengthInvalid {
            length: U256::from(64),
        }),
    );
    // A non-guardian key among two guardians.
    let outsider = PrivateKeySigner::random();
    let with_outsider = [k[0].clone(), k[1].clone(), outsider.clone()];
    assert_reverts(
        vault
            .registerDraw(draw.clone(), sign_all(&draw, &id, &with_outsider))
            .call()
            .await,
        E::SignerNotGuardian(BackstopVault::SignerNotGuardian {
            signer: outsider.address(),
        }),
    );
}

/// Signatures made for the wrong chain or the wrong vault recover to addresses that are
/// not guardians.
#[tokio::test]
async fn wrong_domain_and_expired_and_policy_cases_revert() {
    let c = Consortium::start().await;
    let vault = c.home.vault();
    let id = c.home.id();
    let draw = c.draw(600 * UNIT, 400 * UNIT).await;
    let signers = &c.keys[..3];
    for wrong in [VaultId { chain_id: 1, ..id }, c.remote.id()] {
        // Under the vault's own domain the first signature recovers to an unrelated
        // address, which the vault reports.
        let sigs = sign_all(&draw, &wrong, signers);
        let first = alloy::signers::Signature::from_raw(&sigs[..65]).unwrap();
        let recovered = first
            .recover_address_from_prehash(&draw.digest(&id))
            .unwrap();
        assert_reverts(
            vault.registerDraw(draw.clone(), sigs).call().await,
            E::SignerNotGuardian(BackstopVault::SignerNotGuardian { signer: recovered }),
        );
    }

    // Expired.
    let now = c.home.timestamp().await;
    let expired = IBackstopVault::Draw {
        deadline: now - 1,
        ..draw.clone()
    };
    assert_reverts(
        vault
            .registerDraw(expired.clone(), sign_all(&expired, &id, signers))
            .call()
            .await,
        E::Expired(BackstopVault::Expired { deadline: now - 1 }),
    );

    // Bucket empty: 20,000 units exceed the 10,000-unit bucket.
    let big = c.draw(20_000 * UNIT, 0).await;
    let available = vault.bucketAvailable().call().await.unwrap();
    assert_reverts(
        vault
            .registerDraw(big.clone(), sign_all(&big, &id, signers))
            .call()
            .await,
        E::BucketEmpty(BackstopVault::BucketEmpty {
            amount: U256::from(20_000 * UNIT),
            available,
        }),
    );

    // Reserve hit on the remote vault: 5,000 deposited, floor 1,000, leg of 4,500.
    let release = c.leg_release(keccak256("registered"), 4_500 * UNIT).await;
    assert_reverts(
        c.remote
            .vault()
            .releaseLeg(release.clone(), sign_all(&release, &c.remote.id(), signers))
            .call()
            .await,
        E::ReserveHit(BackstopVault::ReserveHit {
            amount: U256::from(4_500 * UNIT),
            balance: U256::from(5_000 * UNIT),
            reserveFloor: U256::from(RESERVE_FLOOR),
        }),
    );

    // Frozen: p = 2 signatures freeze the member on the remote vault; its legs stop.
    let freeze = IBackstopVault::FreezeMember {
        member: member_id(),
        id: keccak256("freeze"),
        deadline: c.remote.deadline().await,
    };
    let receipt = mined(c.remote.vault().freezeMember(
        freeze.clone(),
        sign_all(&freeze, &c.remote.id(), &c.keys[..2]),
    ))
    .await;
    assert!(receipt.status());
    let small = c.leg_release(keccak256("registered"), 100 * UNIT).await;
    assert_reverts(
        c.remote
            .vault()
            .releaseLeg(small.clone(), sign_all(&small, &c.remote.id(), signers))
            .call()
            .await,
        E::MemberIsFrozen(BackstopVault::MemberIsFrozen {
            member: member_id(),
        }),
    );
    // The freeze id cannot be replayed.
    assert_reverts(
        c.remote
            .vault()
            .freezeMember(
                freeze.clone(),
                sign_all(&freeze, &c.remote.id(), &c.keys[..2]),
            )
            .call()
            .await,
        E::ActionIdUsed(BackstopVault::ActionIdUsed { id: freeze.id }),
    );

    // Paused: p = 2 signatures pause the home vault; new draws stop.
    let pause = IBackstopVault::Pause {
        id: keccak256("pause"),
        deadline: c.home.deadline().await,
    };
    let receipt = mined(vault.pause(pause.clone(), sign_all(&pause, &id, &c.keys[..2]))).await;
    assert!(receipt.status());
    assert_reverts(
        vault
            .registerDraw(draw.clone(), sign_all(&draw, &id, signers))
            .call()
            .await,
        E::VaultPaused(BackstopVault::VaultPaused {}),
    );
    // Lifting the pause needs t: p signatures are refused.
    let unpause = IBackstopVault::Unpause {
        id: keccak256("unpause"),
        deadline: c.home.deadline().await,
    };
    assert_reverts(
        vault
            .unpause(unpause.clone(), sign_all(&unpause, &id, &c.keys[..2]))
            .call()
            .await,
        E::InsufficientSignatures(BackstopVault::InsufficientSignatures {
            given: U256::from(2),
            required: U256::from(3),
        }),
    );
}
