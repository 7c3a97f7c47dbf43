// Scenario file_upload, Node: see file_upload_flow.js.
'use strict';

require('./file_upload_flow').runFlow('file_upload');
