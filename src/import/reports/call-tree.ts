/**
 * The call trees `sample` and `spindump` print: one line per frame, nested by the column
 * of its sample count, outermost first. A thread's stack is its heaviest path (at each
 * level the child with the most samples, the first on a tie), built in one pass.
 */
import type { Frame } from '../../types';

interface Node {
  frame: Frame;
  kernel: boolean;
  depth: number;
  count: number;
  /** The heaviest child so far, or -1. */
  best: number;
}

export class CallTree {
  private readonly nodes: Node[] = [];
  /** Indices of the open nodes, outermost first (the path to the last line). */
  private readonly open: number[] = [];
  private bestRoot = -1;
  private leaves = 0;

  add(depth: number, count: number, frame: Frame, kernel = false): void {
    while (this.open.length > 0 && this.nodes[this.open[this.open.length - 1]].depth >= depth) this.open.pop();
    const index = this.nodes.length;
    this.nodes.push({ frame, kernel, depth, count, best: -1 });
    if (this.open.length === 0) {
      if (this.bestRoot === -1 || count > this.nodes[this.bestRoot].count) this.bestRoot = index;
    } else {
      const parent = this.nodes[this.open[this.open.length - 1]];
      if (parent.best === -1) this.leaves--; // the parent stops being a leaf
      if (parent.best === -1 || count > this.nodes[parent.best].count) parent.best = index;
    }
    this.leaves++;
    this.open.push(index);
  }

  get size(): number {
    return this.nodes.length;
  }

  /** Samples in the heaviest root (the thread's samples when the tree is one thread's); only on a tree with nodes. */
  get rootCount(): number {
    return this.nodes[this.bestRoot].count;
  }

  /** Call paths other than the heaviest one (leaves − 1). */
  get otherPaths(): number {
    return Math.max(0, this.leaves - 1);
  }

  /** The heaviest path, innermost first, split into user and kernel frames, and the samples in its innermost frame. */
  heaviest(): { stack: Frame[]; kernelFrames: Frame[]; leafCount: number } {
    const stack: Frame[] = [];
    const kernelFrames: Frame[] = [];
    let leafCount = 0;
    for (let i = this.bestRoot; i !== -1; i = this.nodes[i].best) {
      const node = this.nodes[i];
      (node.kernel ? kernelFrames : stack).push(node.frame);
      leafCount = node.count;
    }
    stack.reverse();
    kernelFrames.reverse();
    return { stack, kernelFrames, leafCount };
  }
}
