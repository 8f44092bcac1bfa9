/**
 * The simulation's clock: xstate's `SimulatedClock`, to the letter, on two binary heaps.
 *
 * `SimulatedClock.set()` re-sorts every pending timer, and sorts again each time a timer it
 * fires schedules or cancels one: with a few dozen timers pending that sorting was the largest
 * single cost of the seeded simulation. This clock fires the same timers in the same order with
 * the same interleaving, so a seed replays exactly as it did on SimulatedClock:
 *
 * - order: by due time (`start + timeout`), ties by creation (SimulatedClock's sort is stable);
 * - `set(t)` fires every timer due by `t`; a timer scheduled or cancelled by a firing timer is
 *   seen at once (SimulatedClock restarts its pass) — except when the firing timer was the last
 *   of the pass (the latest-due timer pending when the pass began): SimulatedClock's loop then
 *   ends, and whatever became due waits for the next `set()`. Kept, for identical replays;
 * - a `set()` from inside a firing timer moves the time and lets the running pass go on.
 */
interface Timer {
  id: number;
  start: number;
  timeout: number;
  /** start + timeout */
  due: number;
  fn: () => void;
}

/** a ≺ b: earlier due, then earlier creation */
const before = (a: Timer, b: Timer) => a.due < b.due || (a.due === b.due && a.id < b.id);

/** A binary heap of timers, ordered by `higher(a, b)` = a goes on top of b. */
class TimerHeap {
  private readonly items: Timer[] = [];
  constructor(private readonly higher: (a: Timer, b: Timer) => boolean) {}
  get size(): number {
    return this.items.length;
  }
  peek(): Timer | undefined {
    return this.items[0];
  }
  push(t: Timer): void {
    const a = this.items;
    let i = a.length;
    a.push(t);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.higher(t, a[p]!)) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = t;
  }
  pop(): Timer | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= a.length) break;
      const r = l + 1;
      const c = r < a.length && this.higher(a[r]!, a[l]!) ? r : l;
      if (!this.higher(a[c]!, last)) break;
      a[i] = a[c]!;
      i = c;
    }
    a[i] = last;
    return top;
  }
}

/** A `Clock` for `createActor(…, { clock })`, plus `now`, `set` and `nextDue`. */
export class SimClock {
  private time = 0;
  private nextId = 0;
  /** pending timers by id; the heaps also hold cancelled ones, dropped when they surface */
  private readonly pending = new Map<number, Timer>();
  private readonly earliest = new TimerHeap(before);
  private readonly latest = new TimerHeap((a, b) => before(b, a));
  private flushing = false;
  private invalidated = false;

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, timeout: number): number {
    this.invalidated = this.flushing;
    const id = this.nextId++;
    const t: Timer = { id, start: this.time, timeout, due: this.time + timeout, fn };
    this.pending.set(id, t);
    this.earliest.push(t);
    this.latest.push(t);
    return id;
  }

  clearTimeout(id: number): void {
    this.invalidated = this.flushing;
    this.pending.delete(id);
  }

  /** due time of the earliest pending timer, or undefined */
  nextDue(): number | undefined {
    return this.top(this.earliest)?.due;
  }

  set(time: number): void {
    if (this.time > time) throw new Error("Unable to travel back in time");
    this.time = time;
    this.flush();
  }

  private top(heap: TimerHeap): Timer | undefined {
    for (;;) {
      const t = heap.peek();
      if (t === undefined || this.pending.get(t.id) === t) return t;
      heap.pop(); // cancelled or fired
    }
  }

  private flush(): void {
    if (this.flushing) {
      this.invalidated = true;
      return;
    }
    this.flushing = true;
    // one pass = one of SimulatedClock's sorted snapshots
    for (let pass = true; pass; ) {
      pass = false;
      this.invalidated = false;
      const last = this.top(this.latest);
      for (;;) {
        const t = this.top(this.earliest);
        if (t === undefined || this.time - t.start < t.timeout) break;
        this.earliest.pop();
        this.pending.delete(t.id);
        t.fn.call(null);
        if (t === last) break; // SimulatedClock's loop ends here, invalidated or not
        if (this.invalidated) {
          pass = true; // re-snapshot: timers added or cancelled meanwhile count
          break;
        }
      }
    }
    this.flushing = false;
  }
}
