// `@glm4v/runtime/internal` in a page: every platform's pieces plus the page's folders. These names may change.

export * from '../pieces.js';
export { PickedFolder, DirectoryHandleFolder } from './folders.js';
export { preprocessVideo } from './platform.js';
