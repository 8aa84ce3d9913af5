/**
 * The data of the VFIO_USER_DEVICE_FEATURE features vfio-user carries (the
 * spec's "Device Features"), as pure functions over the bytes after the
 * 8-byte feature header. Used by the server's device-feature handler and
 * by the client's migration helpers.
 *
 *     MIGRATION               flags u64
 *     MIG_DEVICE_STATE        device_state u32, data_fd u32 (unused: -1)
 *     DMA_LOGGING_START/STOP  page_size u64, num_ranges u32, reserved u32,
 *                             then num_ranges × {iova u64, length u64}
 *     DMA_LOGGING_REPORT      iova u64, length u64, page_size u64
 *                             (+ the bitmap, u64 words, in the reply)
 *
 * Unlike the kernel's vfio_device_feature_dma_logging_control, whose
 * `ranges` is a pointer, vfio-user sends the ranges inline; num_ranges 0
 * means every write is logged.
 */
import { VfioError } from '../base/errors.js';
import { u32, u64n } from './buffer-reader.js';
import { put32, put64 } from './buffer-writer.js';

/** Bytes of each fixed part. */
export const FeatureSize = {
  MIGRATION: 8,
  MIG_STATE: 8,
  LOGGING_CONTROL: 16,
  LOGGING_RANGE: 16,
  LOGGING_REPORT: 24,
} as const;

/** data_fd when no fd is passed (always, in vfio-user). */
const NO_FD = 0xffffffff;

function need(what: string, data: Uint8Array, n: number): void {
  if (data.length < n) throw new VfioError('EINVAL', `${what}: the feature data has ${data.length} bytes, ${n} are needed`);
}

/** A u64 field that must be an exact number (< 2^53): EOVERFLOW otherwise. */
function exact(data: Uint8Array, off: number, what: string): number {
  const v = u64n(data, off);
  if (v < 0) throw new VfioError('EOVERFLOW', `${what} is beyond 2^53`);
  return v;
}

// ---- MIGRATION ---------------------------------------------------------------

export function encodeMigrationFlags(flags: number): Uint8Array {
  const b = new Uint8Array(FeatureSize.MIGRATION);
  put64(b, 0, flags);
  return b;
}

export function decodeMigrationFlags(data: Uint8Array): number {
  need('MIGRATION', data, FeatureSize.MIGRATION);
  return u32(data, 0);
}

// ---- MIG_DEVICE_STATE --------------------------------------------------------

export function encodeMigState(state: number): Uint8Array {
  const b = new Uint8Array(FeatureSize.MIG_STATE);
  put32(b, 0, state);
  put32(b, 4, NO_FD);
  return b;
}

/** The state asked for (or reported). */
export function decodeMigState(data: Uint8Array): number {
  need('MIG_DEVICE_STATE', data, FeatureSize.MIG_STATE);
  return u32(data, 0);
}

// ---- DMA logging -------------------------------------------------------------

/** DMA_LOGGING_START's control: the page size and the ranges to log. */
export interface DmaLoggingControl {
  pageSize: number;
  ranges: { iova: number; length: number }[];
}

export function encodeDmaLoggingControl(c: DmaLoggingControl): Uint8Array {
  const b = new Uint8Array(FeatureSize.LOGGING_CONTROL + c.ranges.length * FeatureSize.LOGGING_RANGE);
  put64(b, 0, c.pageSize);
  put32(b, 8, c.ranges.length);
  c.ranges.forEach((r, i) => {
    put64(b, 16 + i * 16, r.iova);
    put64(b, 24 + i * 16, r.length);
  });
  return b;
}

/**
 * Checks only the shape (EINVAL when the ranges announced are not all
 * there, E2BIG above `maxRanges` before reading any, EOVERFLOW for values
 * beyond 2^53); what the values mean is the dirty log's to check.
 */
export function decodeDmaLoggingControl(data: Uint8Array, maxRanges: number): DmaLoggingControl {
  need('DMA_LOGGING_START', data, FeatureSize.LOGGING_CONTROL);
  const pageSize = exact(data, 0, 'the DMA logging page size');
  const n = u32(data, 8);
  if (n > maxRanges) throw new VfioError('E2BIG', `DMA_LOGGING_START: ${n} ranges, at most ${maxRanges}`);
  need('DMA_LOGGING_START', data, FeatureSize.LOGGING_CONTROL + n * FeatureSize.LOGGING_RANGE);
  const ranges: DmaLoggingControl['ranges'] = [];
  for (let i = 0; i < n; i++) {
    const at = FeatureSize.LOGGING_CONTROL + i * FeatureSize.LOGGING_RANGE;
    ranges.push({ iova: exact(data, at, 'a DMA logging range'), length: exact(data, at + 8, 'a DMA logging range length') });
  }
  return { pageSize, ranges };
}

/** The control of a START reply: the request's, with the page size the device chose. */
export function withPageSize(control: Uint8Array, pageSize: number): Uint8Array {
  const b = control.slice();
  put64(b, 0, pageSize);
  return b;
}

/** DMA_LOGGING_REPORT's request: which IOVA range, in which page size. */
export interface DmaLoggingReport {
  iova: number;
  length: number;
  pageSize: number;
}

export function encodeDmaLoggingReport(r: DmaLoggingReport): Uint8Array {
  const b = new Uint8Array(FeatureSize.LOGGING_REPORT);
  put64(b, 0, r.iova);
  put64(b, 8, r.length);
  put64(b, 16, r.pageSize);
  return b;
}

export function decodeDmaLoggingReport(data: Uint8Array): DmaLoggingReport {
  need('DMA_LOGGING_REPORT', data, FeatureSize.LOGGING_REPORT);
  return {
    iova: exact(data, 0, 'the DMA logging report address'),
    length: exact(data, 8, 'the DMA logging report length'),
    pageSize: exact(data, 16, 'the DMA logging report page size'),
  };
}
