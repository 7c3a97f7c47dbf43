// ES module entry: the implementation is CommonJS (index.js) so that Jest and Mocha can require it.
import iotemu from './index.js';

export const { startIotemu, binaryPath, AZURE_HTTPS_PORT } = iotemu;
export default iotemu;
