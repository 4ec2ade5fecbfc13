/** Local time in ms: wall-clock based (comparable with server ms after the clock offset)
 * but monotonic, so a system clock step never sends a schedule backwards. */
export function now() {
  return performance.timeOrigin + performance.now();
}
