// The platform seam, Node side (package.json "imports" #platform, condition "node"/default): model folders and
// files on disk (read and written), images decoded with sharp, video frames from ffmpeg. The browser side is browser/platform.ts.

export { createFile, openFile, openFolder } from '../files/node.js';
export { decodeImage } from '../preprocess/decode-image.js';
export { preprocessVideo } from '../preprocess/video.js';
