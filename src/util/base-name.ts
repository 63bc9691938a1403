/** The last component of a path or URL path ("a/b/model.safetensors" → "model.safetensors"), on any platform. */
export function baseName(p: string): string {
  return p.slice(Math.max(p.lastIndexOf("/"), p.lastIndexOf("\\")) + 1);
}
