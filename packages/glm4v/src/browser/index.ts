// @glm4v/runtime in a page (package.json condition "browser"): the same API as under Node, where a folder given
// as a string is a URL relative to the page, plus the folders a user picks.
//   const model = await Glm4v.load(new PickedFolder(input.files), { onProgress });   // or Glm4v.load('./models/glm/')

export * from '../index.js';
export { PickedFolder, DirectoryHandleFolder } from './folders.js';
