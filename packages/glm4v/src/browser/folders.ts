// Model folders a user picks in a page: the files of an `<input type="file" webkitdirectory>` (a FileList whose
// names carry the folder's relative paths), or a directory handle from the File System Access API
// (`showDirectoryPicker()`). Files are read by slices, so a 5 GB shard is never in memory whole.

import type { FileSource, ModelFolder } from '../files/folder.js';

/** A File read by position through Blob.slice. */
function fileSource(file: File, path: string): FileSource {
  return {
    path,
    size: file.size,
    async read(target: Uint8Array, position: number): Promise<number> {
      const end = Math.min(file.size, position + target.byteLength);
      if (end <= position) return 0;
      const bytes = new Uint8Array(await file.slice(position, end).arrayBuffer());
      target.set(bytes);
      return bytes.byteLength;
    },
    close: async () => undefined,
  };
}

/**
 * The files of a picked folder (`input.files` of `<input type="file" webkitdirectory>`, or files dropped together).
 * Names are taken relative to the folder picked: `GLM-4.1V-9B-Thinking/config.json` is `config.json`.
 */
export class PickedFolder implements ModelFolder {
  readonly location: string;
  private readonly files = new Map<string, File>();

  constructor(files: Iterable<File>) {
    const list = [...files];
    const rel = (f: File) => (f as File & { webkitRelativePath?: string }).webkitRelativePath || f.name;
    const top = list.length ? rel(list[0]).split('/')[0] : '';
    const nested = list.length > 0 && list.every((f) => rel(f).startsWith(`${top}/`));
    this.location = nested ? top : 'the picked files';
    for (const f of list) this.files.set(nested ? rel(f).slice(top.length + 1) : rel(f), f);
  }

  /** The names of the files, relative to the folder. */
  get names(): string[] {
    return [...this.files.keys()];
  }

  path(name: string): string {
    return `${this.location}/${name}`;
  }

  async open(name: string): Promise<FileSource | undefined> {
    const f = this.files.get(name);
    return f && fileSource(f, this.path(name));
  }

  async readText(name: string): Promise<string | undefined> {
    return this.files.get(name)?.text();
  }
}

/** A folder opened with the File System Access API (`await showDirectoryPicker()`). */
export class DirectoryHandleFolder implements ModelFolder {
  readonly location: string;

  constructor(private readonly dir: FileSystemDirectoryHandle) {
    this.location = dir.name;
  }

  path(name: string): string {
    return `${this.location}/${name}`;
  }

  private async file(name: string): Promise<File | undefined> {
    const parts = name.split('/');
    let dir = this.dir;
    try {
      for (const p of parts.slice(0, -1)) dir = await dir.getDirectoryHandle(p);
      return await (await dir.getFileHandle(parts[parts.length - 1])).getFile();
    } catch (e) {
      if ((e as DOMException).name === 'NotFoundError' || (e as DOMException).name === 'TypeMismatchError')
        return undefined;
      throw e;
    }
  }

  async open(name: string): Promise<FileSource | undefined> {
    const f = await this.file(name);
    return f && fileSource(f, this.path(name));
  }

  async readText(name: string): Promise<string | undefined> {
    return (await this.file(name))?.text();
  }
}
