/**
 * Telling systemd how the daemon is doing (sd_notify(3) and its
 * protocol): `READY=1` once every device is served and the control socket
 * answers (what a `Type=notify` unit waits for before starting what comes
 * after it), `STATUS=` lines `systemctl status` shows, and `STOPPING=1`
 * when shutdown begins. Without NOTIFY_SOCKET (not started by systemd)
 * nothing is sent.
 */
import { toVfioError } from '../base/errors.js';
import { notifyDatagram } from '../native/notify.js';
import type { Logger } from './log.js';

export class SystemdNotifier {
  private failed = false;

  /** `socket`: NOTIFY_SOCKET as systemd set it (absolute path, or `@abstract`); undefined: a no-op notifier. */
  constructor(
    private readonly socket: string | undefined,
    private readonly log: Logger,
  ) {}

  /** The notifier of this process's environment. */
  static fromEnv(log: Logger, env: NodeJS.ProcessEnv = process.env): SystemdNotifier {
    return new SystemdNotifier(env.NOTIFY_SOCKET || undefined, log);
  }

  /** True when a service manager listens. */
  get active(): boolean {
    return this.socket !== undefined;
  }

  /** The daemon serves: `status` is shown by `systemctl status`. */
  ready(status: string): void {
    this.send(`READY=1\nSTATUS=${oneLine(status)}\nMAINPID=${process.pid}\n`);
  }

  /** Shutdown began. */
  stopping(status: string): void {
    this.send(`STOPPING=1\nSTATUS=${oneLine(status)}\n`);
  }

  /**
   * Another process is the service from now on (a takeover): sent by the
   * main process, the one systemd listens to (NotifyAccess=main).
   */
  mainPid(pid: number, status: string): void {
    this.send(`MAINPID=${pid}\nSTATUS=${oneLine(status)}\n`);
  }

  /** A new status line. */
  status(status: string): void {
    this.send(`STATUS=${oneLine(status)}\n`);
  }

  private send(message: string): void {
    if (this.socket === undefined) return;
    try {
      notifyDatagram(this.socket, Buffer.from(message));
    } catch (err) {
      // Once: a manager that went away would otherwise fill the log.
      if (!this.failed) this.log.warn('cannot notify the service manager', { socket: this.socket, error: toVfioError(err) });
      this.failed = true;
    }
  }
}

/** A variable's value is one line. */
function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ');
}
