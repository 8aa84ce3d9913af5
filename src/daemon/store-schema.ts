/**
 * The store's schema, as an append-only list of migrations. A database
 * records each migration it has had in `schema_version`; opening it applies
 * the missing ones, each in its own transaction. Never edit a migration
 * that has shipped: add the next one.
 */

export interface Migration {
  version: number;
  /** What it changes, for the log. */
  summary: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    summary: 'definitions and meta tables',
    sql: `
      -- One row per defined device. mdevctl keys definitions by parent and
      -- UUID: the same UUID may be defined under two parents (one runs).
      CREATE TABLE definitions (
        uuid       TEXT NOT NULL,
        parent     TEXT NOT NULL,
        mdev_type  TEXT NOT NULL,
        start      TEXT NOT NULL CHECK (start IN ('auto', 'manual')),
        -- mdevctl's "attrs": a JSON array of one-member objects, in order.
        attrs      TEXT NOT NULL DEFAULT '[]',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (uuid, parent)
      ) WITHOUT ROWID;

      -- Facts about the store itself (e.g. whether defaults were seeded).
      CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
      ) WITHOUT ROWID;
    `,
  },
];

/** The newest schema this build knows. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;
