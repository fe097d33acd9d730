//! The PostgreSQL schema, versioned (issue: "created or migrated on first
//! start; a second server starting at the same moment does not break it").
//!
//! `lottery_schema` holds the version reached; [`MIGRATIONS`] are applied in
//! order, each in its own transaction with its version. Every server runs
//! [`migrate`] at start under one session advisory lock, so two servers
//! starting together apply a migration once (the second waits, then finds it
//! done). A database whose version is newer than this program knows is
//! refused: an older server must not write into a layout it cannot read.
//!
//! Version 1 holds the SQLite store's `ranges`, `progress` and
//! `agencies_done`; the bets as one row per stored batch (`bet_batches`,
//! numbered in storage order, the bets one per line) with a view `bets` of
//! one row per bet (what a `SELECT` on SQLite's table gives); `lottery` (the
//! expected agency count and when the draw happened, one row); and
//! `lottery_admit`, the exactly-once rule of `store::sqlite::ranges` as a
//! function of the database: it takes a transaction lock per agency (in agency
//! order, so two servers never deadlock), so the decision about a batch sees
//! every batch committed by any server before it; it numbers the new batches,
//! records the agencies done and, under the `lottery` row's lock, the draw,
//! exactly once.

use tokio_postgres::Client;

use super::{pg, state_of};
use crate::Error;
use crate::store::LotteryState;

/// Key of the advisory lock held while migrating ("lottery" in ASCII).
const MIGRATION_LOCK: i64 = 0x006c_6f74_7465_7279;

/// Version 1.
const V1: &str = r"
CREATE TABLE lottery (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    expected integer NOT NULL,
    drawn_at timestamptz
);
-- One row per stored batch: its bets one per line, as
-- nombre,apellido,documento,nacimiento,numero (a bet holds no comma and no
-- control character). Kept out of line and uncompressed: the row is small,
-- nothing is spent compressing. A row per bet cost the database most of
-- its ingest time; the view `bets` below gives them one row each.
CREATE SEQUENCE bets_batch_seq;
CREATE TABLE bet_batches (
    batch bigint NOT NULL,
    agency smallint NOT NULL,
    first bigint,
    count integer NOT NULL,
    bets text NOT NULL
);
ALTER TABLE bet_batches ALTER COLUMN bets SET STORAGE EXTERNAL;
-- Every bet, in storage order (batch, pos).
CREATE VIEW bets AS
    SELECT b.batch, (t.pos - 1)::integer AS pos, b.agency,
           split_part(t.line, ',', 1) AS nombre,
           split_part(t.line, ',', 2) AS apellido,
           split_part(t.line, ',', 3) AS documento,
           split_part(t.line, ',', 4) AS nacimiento,
           split_part(t.line, ',', 5)::integer AS numero
    FROM bet_batches b
    CROSS JOIN LATERAL string_to_table(b.bets, E'\n') WITH ORDINALITY AS t(line, pos);
CREATE TABLE ranges (
    agency smallint NOT NULL,
    first bigint NOT NULL,
    count bigint NOT NULL,
    digest bigint NOT NULL,
    PRIMARY KEY (agency, first)
);
CREATE TABLE progress (
    agency smallint PRIMARY KEY,
    next bigint NOT NULL,
    digest bigint NOT NULL
);
CREATE TABLE agencies_done (agency smallint PRIMARY KEY);

-- u64 digests live in bigint as their bits; their sum wraps as in Rust.
CREATE FUNCTION lottery_wrapping_add(a bigint, b bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT ((((a::numeric + b::numeric + 9223372036854775808) % 18446744073709551616)
             + 18446744073709551616) % 18446744073709551616 - 9223372036854775808)::bigint
$$;

-- Decides about each batch of a group, in order: '' new (its range recorded,
-- the agency's progress moved on; its number in ids), 'same' (a retry), or
-- the conflict's text. Marks agencies done for new last batches; drew is true
-- for the one commit that completes the expected set.
CREATE FUNCTION lottery_admit(
    agencies smallint[], firsts bigint[], counts bigint[], digests bigint[], lasts boolean[],
    OUT verdicts text[], OUT ids bigint[], OUT drew boolean
) LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    a smallint;
    f bigint;
    e bigint;
    n bigint;
    d bigint;
    bf bigint;
    bn bigint;
    bd bigint;
    -- Each agency's progress, read once and written back once (index agency + 1).
    nxs bigint[] := array_fill(NULL::bigint, ARRAY[256]);
    dgs bigint[] := array_fill(NULL::bigint, ARRAY[256]);
    moved boolean[] := array_fill(false, ARRAY[256]);
    marked boolean := false;
    wanted integer;
    finished integer;
    drawn timestamptz;
BEGIN
    verdicts := '{}';
    ids := '{}';
    drew := false;
    FOR a IN SELECT DISTINCT x FROM unnest(agencies) AS x ORDER BY x LOOP
        PERFORM pg_advisory_xact_lock(7565, a);
        SELECT p.next, p.digest INTO n, d FROM progress p WHERE p.agency = a;
        nxs[a + 1] := coalesce(n, 0);
        dgs[a + 1] := coalesce(d, 0);
    END LOOP;
    FOR i IN 1 .. coalesce(array_length(agencies, 1), 0) LOOP
        a := agencies[i];
        f := firsts[i];
        IF f IS NOT NULL THEN
            e := f + counts[i];
            -- Stored batches never overlap: only the last one starting
            -- before the end can overlap this one.
            SELECT r.first, r.count, r.digest INTO bf, bn, bd FROM ranges r
                WHERE r.agency = a AND r.first < greatest(e, f + 1)
                ORDER BY r.first DESC LIMIT 1;
            IF FOUND AND (bf + bn > f OR (bf >= f AND bf < e)) THEN
                ids := ids || NULL::bigint;
                SELECT r.count, r.digest INTO n, d FROM ranges r WHERE r.agency = a AND r.first = f;
                IF NOT FOUND THEN
                    verdicts := verdicts || format(
                        'batch conflict: bets %s..%s of agency %s overlap the stored batch %s..%s (another batch size or other bets); nothing stored. Ask RESUME where the agency stands',
                        f, e, a, bf, bf + bn);
                ELSIF n = counts[i] AND d = digests[i] THEN
                    verdicts := verdicts || 'same'::text;
                ELSE
                    verdicts := verdicts || format(
                        'batch conflict: bets %s..%s of agency %s clash with the stored batch %s..%s (%s); nothing stored. Ask RESUME where the agency stands',
                        f, e, a, f, f + n,
                        CASE WHEN n = counts[i] THEN 'other bets' ELSE 'another batch size' END);
                END IF;
                CONTINUE;
            END IF;
            INSERT INTO ranges (agency, first, count, digest) VALUES (a, f, counts[i], digests[i]);
            IF nxs[a + 1] = f THEN
                -- Move on over this batch and any stored past a gap it fills.
                nxs[a + 1] := e;
                dgs[a + 1] := lottery_wrapping_add(dgs[a + 1], digests[i]);
                moved[a + 1] := true;
                LOOP
                    SELECT r.count, r.digest INTO n, d FROM ranges r
                        WHERE r.agency = a AND r.first = nxs[a + 1];
                    EXIT WHEN NOT FOUND OR n = 0;
                    nxs[a + 1] := nxs[a + 1] + n;
                    dgs[a + 1] := lottery_wrapping_add(dgs[a + 1], d);
                END LOOP;
            END IF;
        END IF;
        verdicts := verdicts || ''::text;
        ids := ids || nextval('bets_batch_seq');
        IF lasts[i] THEN
            INSERT INTO agencies_done (agency) VALUES (a) ON CONFLICT DO NOTHING;
            marked := true;
        END IF;
    END LOOP;
    INSERT INTO progress (agency, next, digest)
        SELECT x - 1, nxs[x], dgs[x] FROM generate_series(1, 256) AS x WHERE moved[x]
        ON CONFLICT (agency) DO UPDATE SET next = excluded.next, digest = excluded.digest;
    IF marked THEN
        -- Counted under the row's lock, held to commit: of two servers
        -- finishing the last agencies at once, the second counts both.
        SELECT l.expected, l.drawn_at INTO wanted, drawn FROM lottery l WHERE l.id FOR UPDATE;
        SELECT count(*) INTO finished FROM agencies_done;
        IF drawn IS NULL AND finished >= wanted THEN
            UPDATE lottery SET drawn_at = now() WHERE id;
            drew := true;
        END IF;
    END IF;
END
$$;
";

/// Every migration, version `i + 1` at index `i`.
pub const MIGRATIONS: &[&str] = &[V1];

/// The newest schema version this program knows.
pub const KNOWN_VERSION: i32 = MIGRATIONS.len() as i32;

/// A u64 digest as the bigint holding its bits.
pub fn to_sql(d: u64) -> i64 {
    i64::from_ne_bytes(d.to_ne_bytes())
}

/// The u64 digest a bigint holds.
pub fn from_sql(d: i64) -> u64 {
    u64::from_ne_bytes(d.to_ne_bytes())
}

/// Brings the schema to [`KNOWN_VERSION`] (once, whoever else starts now),
/// records `expected` if this is the lottery's first server, and returns the
/// lottery's state. Refuses a newer schema and a different expected count.
pub async fn migrate(client: &mut Client, expected: usize) -> Result<LotteryState, Error> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg)?;
    let result = migrate_locked(client, expected).await;
    // The session ends on error anyway; unlocking is for the success path.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result
}

async fn migrate_locked(client: &mut Client, expected: usize) -> Result<LotteryState, Error> {
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS lottery_schema (version integer NOT NULL)")
        .await
        .map_err(pg)?;
    let found: i32 = client
        .query_one("SELECT coalesce(max(version), 0) FROM lottery_schema", &[])
        .await
        .map_err(pg)?
        .try_get(0)
        .map_err(pg)?;
    if found > KNOWN_VERSION {
        return Err(Error::SchemaNewer {
            found,
            known: KNOWN_VERSION,
        });
    }
    for version in found + 1..=KNOWN_VERSION {
        let tx = client.transaction().await.map_err(pg)?;
        tx.batch_execute(MIGRATIONS[(version - 1) as usize])
            .await
            .map_err(pg)?;
        tx.execute(
            "INSERT INTO lottery_schema (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        netkit::log_action!(info, "store_migrate", Success, version = version);
    }
    let wanted = i32::try_from(expected).unwrap_or(i32::MAX);
    client
        .execute(
            "INSERT INTO lottery (expected) VALUES ($1) ON CONFLICT (id) DO NOTHING",
            &[&wanted],
        )
        .await
        .map_err(pg)?;
    let row = client
        .query_one(
            "SELECT expected, drawn_at IS NOT NULL,
                    ARRAY(SELECT agency FROM agencies_done ORDER BY agency)
             FROM lottery",
            &[],
        )
        .await
        .map_err(pg)?;
    let state = state_of(&row).map_err(Error::Postgres)?;
    if state.expected != expected {
        return Err(Error::ExpectedMismatch {
            stored: state.expected,
            ours: expected,
        });
    }
    Ok(state)
}
