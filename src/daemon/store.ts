/**
 * Persistent device definitions: one SQLite database file in the state
 * directory (better-sqlite3; synchronous, so every call below is atomic
 * with respect to the rest of the process, and each change is one
 * transaction, so atomic with respect to crashes and other processes too).
 *
 * Rows are checked again when read: a row edited by hand into a wrong shape
 * is reported with the file, the device and the field, and every other row
 * still loads. A file that is not a database, or is damaged, is reported
 * and left untouched: uvfio never rewrites a database it cannot read.
 */
import Database from 'better-sqlite3';
import { VfioError } from '../base/errors.js';
import { normalizeUuid } from '../mdev/uuid.js';
import { parseConfig, toConfigJson, type MdevDefinition } from './definition.js';
import { MIGRATIONS, SCHEMA_VERSION } from './store-schema.js';

/** Which definitions to look at; both optional (mdevctl's -u and -p). */
export interface DefinitionFilter {
  uuid?: string | undefined;
  parent?: string | undefined;
}

/** A read: the rows that are sound, and one error per row that is not. */
export interface DefinitionListing {
  definitions: MdevDefinition[];
  problems: VfioError[];
}

interface Row {
  uuid: string;
  parent: string;
  mdev_type: string;
  start: string;
  attrs: string;
}

/** Named parameters of the filtered statements; null matches anything. */
interface Match {
  uuid: string | null;
  parent: string | null;
}

const BUSY_TIMEOUT_MS = 5_000;

export class DefinitionStore {
  private readonly db: Database.Database;

  private constructor(
    /** The database file, as given. */
    readonly file: string,
  ) {
    try {
      this.db = new Database(file);
    } catch (err) {
      throw storeError(err, file);
    }
  }

  /**
   * Opens (creating if needed) the database at `file`, checks it and brings
   * its schema up to date. EIO naming the file when it is damaged or not a
   * database; EPROTO when a newer uvfio wrote it.
   */
  static open(file: string): DefinitionStore {
    const store = new DefinitionStore(file);
    try {
      store.prepareDatabase();
      return store;
    } catch (err) {
      store.close();
      throw storeError(err, file);
    }
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  /** Definitions in (uuid, parent) order, filtered. */
  list(filter: DefinitionFilter = {}): DefinitionListing {
    const rows = this.run(() =>
      this.db
        .prepare<[Match], Row>(
          `SELECT uuid, parent, mdev_type, start, attrs FROM definitions
           WHERE (@uuid IS NULL OR uuid = @uuid) AND (@parent IS NULL OR parent = @parent)
           ORDER BY uuid, parent`,
        )
        .all({ uuid: filter.uuid ?? null, parent: filter.parent ?? null }),
    );
    const listing: DefinitionListing = { definitions: [], problems: [] };
    for (const row of rows) {
      try {
        listing.definitions.push(this.decode(row));
      } catch (err) {
        listing.problems.push(err as VfioError);
      }
    }
    return listing;
  }

  /**
   * The one definition of `uuid` (on `parent` when given). ENOENT when there
   * is none; EINVAL when several parents define it and none was named; the
   * row's own error when it is damaged.
   */
  get(uuid: string, parent?: string): MdevDefinition {
    const listing = this.list({ uuid, parent });
    const found = listing.definitions.length + listing.problems.length;
    if (found === 0) {
      throw new VfioError('ENOENT', `no definition of ${uuid}${parent === undefined ? '' : ` on parent ${parent}`}`);
    }
    if (found > 1) {
      throw new VfioError('EINVAL', `${uuid} is defined on several parents; name one with --parent`);
    }
    if (listing.problems.length > 0) throw listing.problems[0]!;
    return listing.definitions[0]!;
  }

  /** Adds a definition. EEXIST when (uuid, parent) is defined already. */
  insert(def: MdevDefinition): void {
    const now = new Date().toISOString();
    this.run(() => {
      try {
        this.db
          .prepare(
            `INSERT INTO definitions (uuid, parent, mdev_type, start, attrs, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)`,
          )
          .run(def.uuid, def.parent, def.mdevType, def.start, encodeAttrs(def), now, now);
      } catch (err) {
        if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
          throw new VfioError('EEXIST', `${def.uuid} is already defined on parent ${def.parent}`);
        }
        throw err;
      }
    });
  }

  /**
   * Reads the definition (as get() does), lets `change` compute the new one
   * and writes it, in one transaction: two concurrent modifies cannot lose
   * each other's change. The UUID and parent cannot change.
   */
  update(uuid: string, parent: string | undefined, change: (def: MdevDefinition) => MdevDefinition): MdevDefinition {
    return this.run(() =>
      this.db
        .transaction(() => {
          const old = this.get(uuid, parent);
          const def = change(old);
          this.db
            .prepare(
              `UPDATE definitions SET mdev_type = ?, start = ?, attrs = ?, updated_at = ?
               WHERE uuid = ? AND parent = ?`,
            )
            .run(def.mdevType, def.start, encodeAttrs(def), new Date().toISOString(), old.uuid, old.parent);
          return { ...def, uuid: old.uuid, parent: old.parent };
        })
        .immediate(),
    );
  }

  /**
   * Removes the definitions of `uuid` (on `parent` only, when given; on
   * every parent otherwise, as mdevctl does) and returns what was removed.
   * Damaged rows go too: undefining is how one gets rid of them. ENOENT
   * when nothing matched.
   */
  remove(uuid: string, parent?: string): Array<{ uuid: string; parent: string }> {
    return this.run(() =>
      this.db
        .transaction(() => {
          const removed = this.db
            .prepare<[Match], { uuid: string; parent: string }>(
              `DELETE FROM definitions WHERE uuid = @uuid AND (@parent IS NULL OR parent = @parent) RETURNING uuid, parent`,
            )
            .all({ uuid, parent: parent ?? null });
          if (removed.length === 0) {
            throw new VfioError('ENOENT', `no definition of ${uuid}${parent === undefined ? '' : ` on parent ${parent}`}`);
          }
          return removed;
        })
        .immediate(),
    );
  }

  /**
   * Gives a store that was never configured its first definitions: on the
   * first call in the life of the database, and only if nothing was defined
   * before it, inserts what `seed` returns. Remembers the call either way,
   * so definitions the operator later undefines do not come back. True
   * when it seeded.
   */
  seedOnce(seed: () => MdevDefinition[]): boolean {
    return this.run(() =>
      this.db
        .transaction(() => {
          const done = this.db.prepare(`SELECT value FROM meta WHERE key = 'seeded'`).get();
          if (done !== undefined) return false;
          const empty = this.db.prepare('SELECT 1 FROM definitions LIMIT 1').get() === undefined;
          if (empty) for (const def of seed()) this.insert(def);
          this.db.prepare(`INSERT INTO meta (key, value) VALUES ('seeded', ?)`).run(new Date().toISOString());
          return empty;
        })
        .immediate(),
    );
  }

  /** The schema version the database is at (after open: SCHEMA_VERSION). */
  schemaVersion(): number {
    return this.run(() => currentVersion(this.db));
  }

  private prepareDatabase(): void {
    const db = this.db;
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    // Reading the header is what tells a database from any other file.
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw new VfioError('EIO', `state database ${this.file} is damaged (${String(check)})`);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.exec(`CREATE TABLE IF NOT EXISTS schema_version (
      version    INTEGER PRIMARY KEY,
      applied_at TEXT NOT NULL
    )`);
    const migrate = db.transaction(() => {
      // Re-read inside the write lock: another process may have migrated meanwhile.
      const at = currentVersion(db);
      if (at > SCHEMA_VERSION) {
        throw new VfioError(
          'EPROTO',
          `state database ${this.file} has schema version ${at}, newer than this uvfio knows (${SCHEMA_VERSION}); upgrade uvfio`,
        );
      }
      for (const m of MIGRATIONS) {
        if (m.version <= at) continue;
        db.exec(m.sql);
        db.prepare('INSERT INTO schema_version (version, applied_at) VALUES (?, ?)').run(m.version, new Date().toISOString());
      }
    });
    migrate.immediate();
  }

  private decode(row: Row): MdevDefinition {
    const source = `${this.file}: definition ${row.uuid} on parent ${row.parent}`;
    let uuid: string;
    try {
      uuid = normalizeUuid(row.uuid);
    } catch {
      throw new VfioError('EINVAL', `${source}: field "uuid" is not a UUID`);
    }
    let attrs: unknown;
    try {
      attrs = JSON.parse(row.attrs);
    } catch (err) {
      throw new VfioError('EINVAL', `${source}: field "attrs" is not valid JSON: ${(err as Error).message}`);
    }
    const config = parseConfig({ mdev_type: row.mdev_type, start: row.start, attrs }, source);
    return { uuid, parent: row.parent, ...config };
  }

  /** Runs a database call, turning SQLite's errors into sentences that name the file. */
  private run<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw storeError(err, this.file);
    }
  }
}

function currentVersion(db: Database.Database): number {
  const row = db.prepare<[], { v: number | null }>('SELECT MAX(version) AS v FROM schema_version').get();
  return row?.v ?? 0;
}

function encodeAttrs(def: MdevDefinition): string {
  return JSON.stringify(toConfigJson(def).attrs);
}

/** SQLite result codes a user can do something about, in words. */
const SQLITE_WORDS: Record<string, { code: 'EIO' | 'EACCES' | 'EBUSY' | 'ENOSPC'; words: string }> = {
  SQLITE_NOTADB: { code: 'EIO', words: 'is not a SQLite database (or is encrypted or damaged); move it aside to start afresh' },
  SQLITE_CORRUPT: { code: 'EIO', words: 'is damaged; move it aside to start afresh' },
  SQLITE_CANTOPEN: { code: 'EACCES', words: 'cannot be opened' },
  SQLITE_READONLY: { code: 'EACCES', words: 'is read-only' },
  SQLITE_PERM: { code: 'EACCES', words: 'cannot be accessed' },
  SQLITE_BUSY: { code: 'EBUSY', words: `is locked by another process (waited ${BUSY_TIMEOUT_MS} ms)` },
  SQLITE_FULL: { code: 'ENOSPC', words: 'cannot grow: the disk is full' },
};

function storeError(err: unknown, file: string): VfioError {
  if (err instanceof VfioError) return err;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && code.startsWith('SQLITE_')) {
    const known = SQLITE_WORDS[code] ?? SQLITE_WORDS[code.replace(/^(SQLITE_[A-Z]+)_.*$/, '$1')];
    const detail = (err as Error).message;
    if (known) return new VfioError(known.code, `state database ${file} ${known.words} (${code}: ${detail})`, { cause: err });
    return new VfioError('EIO', `state database ${file}: ${code}: ${detail}`, { cause: err });
  }
  return new VfioError('EIO', `state database ${file}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}
