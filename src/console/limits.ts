/**
 * What a viewer can make the console hold, each bounded here and said in
 * README ("Live console" limits). A viewer past a limit is refused in words
 * where the protocol has words (an HTTP status, an RFB reason), else
 * disconnected.
 */
export const CONSOLE_LIMITS = {
  /** Open WebSocket connections (browser pages) at once. */
  maxPages: 16,
  /** TCP connections to the HTTP server at once (pages, their assets, API calls). */
  maxHttpConnections: 64,
  /** Bytes of one WebSocket message from a page (requests are small JSON). */
  maxPageMessageBytes: 64 * 1024,
  /** A page is pinged this often and dropped when it did not answer the previous ping. */
  pageHeartbeatMs: 20_000,
  /** Requests a page may have running at once (a stop can wait long for clients). */
  maxPageOpsInFlight: 8,
  /** Bytes of an HTTP request body (the console's API takes small JSON). */
  maxRequestBodyBytes: 64 * 1024,
  /** Time to send a whole HTTP request's headers. */
  headersTimeoutMs: 10_000,
  /** VNC viewers of one display device at once. */
  maxVncClients: 8,
  /** Time a VNC viewer has from connecting to the end of its handshake (ClientInit). */
  vncHandshakeTimeoutMs: 10_000,
  /** Bytes queued on one VNC viewer's socket before its updates wait. */
  maxVncBufferedBytes: 8 * 1024 * 1024,
} as const;
