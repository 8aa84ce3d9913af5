/**
 * The messages of a daemon takeover, in the order they go (N: the daemon
 * taking over, O: the one serving now; see take-over.ts and hand-over.ts):
 *
 *   N → O  hello       who asks, in which protocol version
 *   O → N  inventory   the running devices (uuid, type, attributes, the
 *                      memory of their BARs), the control and takeover
 *                      listening sockets; O takes no request from now on
 *   N → O  freeze      N has made the same devices, not served yet
 *   O → N  state       O froze: each device's migration stream (handover
 *                      mode) and serving state (listener, sessions)
 *   N → O  commit      N adopted everything; THE COMMIT POINT is O
 *                      receiving it: from then on O never serves again
 *   O → N  released    O let go of its listeners; N serves, O exits 0
 *
 * Either side may send `abort` (with an errno and a sentence) instead of
 * its next message; O answers a hello it cannot take with `refused`. Until
 * O receives `commit`, any failure, timeout or closed channel leaves O
 * serving as before. Fds travel beside each message; fields named `fd`
 * are indexes into that message's fd list.
 */
import type { DeviceServingState } from '../vfio-user/index.js';

export const TAKEOVER_PROTOCOL_VERSION = 1;

export interface Hello {
  op: 'hello';
  version: number;
  pid: number;
}

export interface BarState {
  index: number;
  fd: number;
  size: number;
}

export interface InventoryDevice {
  uuid: string;
  parent: string;
  type: string;
  attrs: Record<string, string>;
  bars: BarState[];
}

export interface Inventory {
  op: 'inventory';
  pid: number;
  devices: InventoryDevice[];
  /** the control socket's listener */
  control: number;
  /** the takeover socket's listener */
  takeover: number;
}

export interface Freeze {
  op: 'freeze';
}

export interface DeviceState {
  uuid: string;
  /** the device's migration stream, made in handover mode */
  stream: Uint8Array;
  serving: DeviceServingState;
  /** where this device's fds are in the message's fd list: [first, count] (serving's indexes count from first) */
  fds: [number, number];
}

export interface State {
  op: 'state';
  devices: DeviceState[];
}

export interface Commit {
  op: 'commit';
}

export interface Released {
  op: 'released';
}

export interface Abort {
  op: 'abort' | 'refused';
  code: string;
  message: string;
}

export type TakeoverMessage = Hello | Inventory | Freeze | State | Commit | Released | Abort;
