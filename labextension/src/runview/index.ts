/** The run view in the main area: createRunView is what the shell opens for one run. */
import * as React from 'react';
import { MainAreaWidget } from '@jupyterlab/apputils';
import { JupyterFrontEnd } from '@jupyterlab/application';
import { ReactWidget } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import type { BatchAIClient, EventsClient } from '../api';
import { Visibility } from './hooks';
import { LastNotebook } from './clone';
import { RunView } from './RunView';

import '../../style/runview.css';

/** Tells its React tree when it is shown or hidden, so nothing polls off screen. */
class RunViewContent extends ReactWidget {
  readonly visibility = new Visibility();

  constructor(private readonly props: Omit<React.ComponentProps<typeof RunView>, 'visibility'>) {
    super();
    this.addClass('bai-runview-root');
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.visibility.set(true);
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this.visibility.set(this.isVisible);
  }

  protected onBeforeHide(msg: Message): void {
    this.visibility.set(false);
    super.onBeforeHide(msg);
  }

  dispose(): void {
    this.visibility.set(false);
    super.dispose();
  }

  render(): JSX.Element {
    return React.createElement(RunView, { ...this.props, visibility: this.visibility });
  }
}

export { LastNotebook };

export function createRunView(options: {
  runId: string;
  client: BatchAIClient;
  events: EventsClient;
  app: JupyterFrontEnd;
  notebooks: LastNotebook;
}): Widget {
  const content = new RunViewContent(options);
  const widget = new MainAreaWidget({ content });
  widget.id = `batchai-run-${options.runId}`;
  widget.title.label = options.runId;
  widget.title.closable = true;
  return widget;
}
