/**
 * Region accesses a transport may answer without delivering them:
 * REGION_READs and REGION_WRITEs of region memory that is plain (a copy,
 * no side effect, nothing to check beyond the range), answered by the
 * native layer with no call into JavaScript (FdWatcher.answer): while a
 * socket lingers for its client's next request, as `may()` said right
 * before, and at its readable events, while no blocker cell is set. Every
 * other message, and every access the native layer does not take exactly
 * as it is, reaches the session in order as before.
 */
import type { AnswerRegion } from '../../native/index.js';

export type { AnswerRegion };

/** Region indexes answers can cover (the native layer's table). */
export const MAX_ANSWER_REGIONS = 16;

export interface RegionAnswers {
  /**
   * By region index (below 16): the region's whole memory where reading it
   * (`read`) or writing it (`write`) is a plain copy; null or undefined
   * where it is not. Kept and used for as long as these answers are set.
   */
  regions: ReadonlyArray<AnswerRegion | undefined>;
  /** The largest access the session accepts (max_data_xfer_size): no larger one is answered. */
  maxCount: number;
  /**
   * Asked right before the transport may answer (each time it lingers):
   * true only when an access to those regions would now be served at
   * once, in order, and untraced, as the session would serve it. It must
   * not run anything else: nothing runs between it and the answers.
   */
  may: () => boolean;
  /**
   * Cells (Int32Array, first element) the owner sets to nonzero whenever
   * an answer would no longer be what the session does (its set lock held,
   * a trace subscribed), besides the transport's own (holdAnswers). While
   * one is set, nothing is answered at readable events.
   */
  blockers: readonly Int32Array[];
  /** What was answered, for the owner's counters. */
  answered: (messages: number, bytesIn: number, replies: number, bytesOut: number) => void;
}
