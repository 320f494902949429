/** A set that forgets its oldest entries beyond a bound (insertion order). */
export class RecentSet {
  private readonly items = new Set<string>();

  constructor(private readonly max: number) {}

  add(item: string): void {
    this.items.add(item);
    if (this.items.size > this.max) this.items.delete(this.items.values().next().value as string);
  }

  has(item: string): boolean {
    return this.items.has(item);
  }

  delete(item: string): boolean {
    return this.items.delete(item);
  }
}
