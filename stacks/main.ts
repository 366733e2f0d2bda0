/**
 * The example stacks that `npm run synth` (`cdktf synth`) writes to cdktf.out/. Each is a small
 * program a user could copy into their own cdktf repository.
 */
import { App } from 'cdktf';
import { AzureExampleStack } from './azure.js';
import { KubernetesExampleStack } from './kubernetes.js';

const app = new App();
new KubernetesExampleStack(app, 'kubernetes');
new AzureExampleStack(app, 'azure');
app.synth();
