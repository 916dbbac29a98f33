// The kakeru agent desktop (/ui/agent, SPEC 5 and 12). Plain script, no framework, no build step:
// served by the API from the binary (api/src/pages.rs).
//
// Data flow: the bearer token from the login page (sessionStorage) -> GET /me, /pause-reasons ->
// POST /agent/tickets -> EventSource on /agent/stream?ticket=...&last_event_id=... . Everything
// live arrives on that stream (the agent's transitions, the customer bridged with the lead id,
// notices, remaining leads, colleagues' states); the page runs no polling timer, so a hidden tab
// still gets every event. The one interval redraws clocks (time in state, call timer, ACW).
// Every action is an ordinary endpoint with the agent's own token; the server checks the role.
'use strict';

(() => {
  // ------------------------------------------------------------------------------------------ words
  const I18N = {
    ja: {
      title: 'エージェントデスクトップ', language: '言語', menu: 'メニュー', logout: 'ログアウト',
      ready: '待機', pause: '停止', pause_reason: '停止理由', resume: '再開', end: '終了',
      menu_work: 'コールジョブ', menu_recalls: '再コール一覧',
      conn_live: 'ライブ', conn_connecting: '接続中…', conn_retry: '再接続中…', conn_idle: '',
      jobs_title: 'コールジョブ', col_job: 'コールジョブ', col_campaign: 'キャンペーン', col_mode: '発信モード',
      col_hours: '業務時間', col_remaining: '残件数', col_notes: '連絡事項', col_action: 'ジョブアクション', start_job: '発信開始',
      no_entries: '登録がありません',
      no_entries_hint: 'コールジョブが起動されていないか、発信グループに所属していない可能性があります。管理者にお問い合わせください。',
      confirm_start: 'コールジョブ「{job}」を開始します。よろしいですか?\n開始すると、お使いの電話機に着信があります。',
      setup_title: '電話機を呼び出しています',
      setup_text: 'お使いの電話機に着信があります。応答すると待機画面に移ります。応答後は電話機で切断しないでください。',
      wait_title: '待機中', paused_title: '停止中', wait_time: '待機時間', remaining: '残件数', job: 'コールジョブ', mode: '発信モード',
      mode_preview: 'プレビュー', mode_progressive: 'プログレッシブ', mode_predictive: 'プレディクティブ',
      mode_standard: '標準', mode_distribute: '配布', mode_dial: 'ダイヤル',
      auto_text: 'お客様に自動で発信しています。お客様につながると、この画面に表示されます。',
      preview_title: '次のお客様', distribute_title: '配布', standard_title: 'リード検索', dial_title: 'ダイヤル',
      dial: '発信', skip: 'スキップ', assign: '自動割当', search: '検索', select: '選択', create_lead: 'リード作成',
      search_label: '名前・カナ・電話番号', tel_label: '電話番号 (半角数字、ハイフンなし)', name_label: '名前',
      no_data: 'データがありません', no_more_leads: '発信できるリードはありません',
      held_by_other: '他のエージェントが対応中', dialling: '発信中です… お客様が応答すると通話画面に切り替わります。',
      nd_restricted: '発信規制: この番号は発信規制リストにあるため発信しませんでした。',
      nd_channel_limit: 'チャンネル制限: 同時に発信できる数を超えるため発信しませんでした。',
      nd_stopped: '停止: 発信を停止中のため発信しませんでした。', nd_number_in_call: 'この番号は通話中のため発信しませんでした。',
      nd_outside_hours: '業務時間外のため発信しませんでした。', nd_job_not_running: 'コールジョブが稼働していないため発信しませんでした。',
      nd_lead_not_dialable: 'このリードは発信できません (完了済み、または対応が終わっています)。', nd_error: '発信できませんでした。',
      nd_caller_id_unknown: 'この発番号は使えません。別の発番号を選んでください。',
      transfer: '転送', transfer_to: '転送先', transfer_none: '(待機中のエージェント)', confirm_transfer: '{name} さんに転送しますか?',
      park: 'パーク保留', confirm_park: 'お客様をパーク保留にしますか? (電話機の #72 と同じ)', parked_title: 'パーク保留',
      parked_number: '保留番号', parked_tel: '相手の電話番号', parked_time: '保留時間', parked_none: 'パーク保留中の呼はありません',
      parked_by: '{name} さんが保留', pick_up: 'コールバック', confirm_pick_up: '保留番号 {number} ({tel}) をコールバックしますか? 電話機につながります',
      pick_up_not_ready: '待機中にコールバックできます', pick_up_taken: '保留番号 {number} は他のエージェントが先にコールバックしました。',
      transfer_outside: '外線転送', outside_number: '外線番号', outside_saved: '登録済みの外線転送先', outside_saved_none: '登録先から選ぶ',
      conference: '電話会議', conf_drop: '会議を終了', conf_leave: '会議から退出',
      confirm_conference: '{number} を電話会議に加えますか?',
      conf_calling: '{number} を呼び出しています。お客様との通話は続いています。',
      conf_joined: '3者通話中です。',
      conf_busy: '相手が話し中でした。お客様との通話は続いています。',
      conf_no_answer: '相手が30秒以内に応答しませんでした。お客様との通話は続いています。',
      conf_refused: '相手につながりませんでした。お客様との通話は続いています。',
      conf_not_placed: '電話会議の発信ができませんでした。',
      conf_channel_limit: 'チャンネル数の上限に達しているため電話会議を始められません。',
      conf_party_hung_up: '相手が電話を切りました。お客様との通話は続いています。', confirm_outside: '{number} に外線転送しますか?',
      outside_calling: '{number} を呼び出しています。お客様には保留音が流れています。',
      outside_busy: '転送先が話し中でした。お客様との通話に戻りました。',
      outside_no_answer: '転送先が30秒以内に応答しませんでした。お客様との通話に戻りました。',
      outside_refused: '転送先につながりませんでした。お客様との通話に戻りました。',
      outside_not_placed: '外線転送を発信できませんでした。お客様との通話に戻りました。',
      outside_channel_limit: 'チャンネル数の上限に達しているため外線転送できません。',
      caller_id: '発番号', caller_id_job: 'コールジョブの番号 ({n})', caller_id_withheld: '非通知 (184)',
      call_title: '通話中', offer_title: '接続中', wrapup_title: '後処理', hang_up: 'お客様通話切断', hold: '保留', unhold: '保留解除',
      confirm_hang_up: '切断しますか?', confirm_save: '保存しますか?', confirm_end: '発信業務を終了しますか?',
      acw_left: '後処理 残り {t}', basic_info: '基本情報', edit_lead: '修正', update_lead: '更新', cancel: 'キャンセル',
      f_name: '名前', f_kana: 'フリガナ', f_tel: '電話番号', f_other_numbers: 'その他の電話番号', f_remarks: '備考', f_tags: 'タグ', f_attempts: '発信回数',
      f_last_result: '前回結果', f_list: '顧客リスト', lead_updated: '更新しました (履歴に記録)',
      record: '応対記録', interlocutor: '対話者', self: '本人', other: 'その他', result: '対話結果',
      other_tel: '電話番号(その他)', next_action: '次のアクション', na_continue: '自動発信継続', na_recall: '再発信日時選択',
      na_complete: '完了', recall_at: '再発信日時', in_10m: '10分後', in_1h: '1時間後', in_1d: '1日後', assign_me: '自分を設定',
      memo: 'メモ', state_after: '保存後のステータス', after_continue: '発信業務を継続する', after_break: '休憩', after_away: '離席',
      after_end: '発信業務を終了する', save_next: '保存して次へ', save_only: '保存のみ', saved: '保存しました',
      save_after_call: '通話が終わってから保存できます。', recall_required: '再発信日時を入力してください',
      handed_on: 'この通話は引き継がれました。記録は引き継いだ担当者が保存します。保存で後処理を終えます。',
      no_pause_reasons: '停止理由がありません',
      contacts: '応対履歴', c_started: '発信日時', c_saved: '登録日時', c_tel: '相手先番号', c_interlocutor: '対話者',
      c_result: '対話結果', c_next: '次のアクション', c_talk: '通話時間', c_agent: '発信・登録担当者', c_memo: 'メモ',
      no_contacts: '応対履歴はありません', current_call: '(この通話)',
      recalls_title: '再コール一覧', r_due: '再コール日時', r_campaign: 'キャンペーン名', r_name: '名称と電話番号', r_note: 'メモ',
      dial_now: '今すぐ発信', no_time: '日時指定なし', due_now: '期限',
      presence: 'プレゼンス', no_colleagues: '同じ発信グループのエージェントはいません',
      msg_title: 'お知らせ', msg_business_end: '業務終了時間になりました。コールジョブは停止しました。\n発信業務を続ける場合は、業務時間内にコールジョブ一覧から再度開始してください。',
      msg_job_stopped: 'コールジョブが管理者により停止されました。\n通話中の通話は切断されません。通話終了後、発信業務を終了してください。',
      msg_logged_off: 'エージェントステータスがログオフの状態です\nコールジョブ実行状態でソフトフォンを切断したか、システムの待機時間上限を超過しました\n発信業務を継続する場合はコールジョブ一覧から再度開始してください',
      msg_recall: '再コールが割り当てられました。',
      menu_callbacks: '折り返し呼一覧', callbacks_title: '折り返し呼一覧', cb_filter: '絞り込み', cb_sort: 'ソート対象',
      cb_asc: '昇順', cb_desc: '降順', cb_reload: 'リロード', cb_new: '新規 {n} 件', cb_status: '対応状況', cb_assignee: '担当者',
      cb_open: '未完了', cb_done: '完了', cb_me: '自分', cb_none: '担当者なし (-)', cb_others: '他の担当者',
      cb_paging: 'ページ', cb_prev: '前へ', cb_next: '次へ', cb_range: '{from}–{to} / {total} 件',
      cb_col_status: '対応状況', cb_col_id: 'ID', cb_col_registered_at: '登録日時', cb_col_number: '相手の番号',
      cb_col_name: '相手の名前', cb_col_campaign_name: 'コールセンター', cb_col_label: '業務ラベル', cb_col_assignee_name: '担当者',
      cb_col_memo: 'メモ', cb_col_recording: '録音再生', cb_detail: '折り返し呼詳細 {id}', cb_request_id: 'リクエストID',
      cb_campaign: 'コールセンター名', cb_label: '業務ラベル名', cb_unregistered: '未登録', cb_assign: '担当者を割り当て',
      cb_assign_confirm: '担当者を割り当てます', cb_edit: '編集', cb_save: '保存', cb_cancel: 'キャンセル', cb_play: '再生',
      cb_stop: '停止', cb_dial: '折り返し発信', cb_status_needs_assignee: '担当者の割り当て後に編集できます',
      cb_dial_hint: '待機中のコールジョブから発信します', cb_notify_new: '新しい折り返し呼が登録されました',
      cb_notify_assigned: '折り返し呼が割り当てられました', cb_sort_by: '{col}で並べ替え',
      network_error: '通信できません', not_ready_to_dial: '待機状態のときに発信できます。',
      state_offline: 'オフライン', state_ready: '待機', state_ringing: '着信中', state_talking: '通話中',
      state_hold: '保留', state_wrap_up: '後処理', state_paused: '停止', state_unknown: '未確認',
      res_pending: '発信待機中', res_busy: 'ビジー', res_no_entry: '未入力', res_timeout: '制限時間', res_cancel: 'キャンセル',
      res_error: 'エラー', res_not_in_service: '現アナ', res_channel_limit: 'チャンネル制限', res_restricted: '発信規制', res_stopped: '停止', res_abandoned: '破棄呼',
      res_no_contact: '不通', res_fax: 'FAX', res_prospect: '見込', res_recall: '再コール', res_complaint: 'クレーム', default_results: 'デフォルト',
      // ブラウザフォン (ui/phone.js)
      phone_title: 'ブラウザフォン', phone_mic: 'マイク', phone_level: 'マイク音量', phone_mute: 'ミュート', phone_unmute: 'ミュート解除',
      phone_check: '通話品質チェック', phone_rejoin: '再接続', phone_pad: 'ダイヤルパッド',
      phone_off: '未接続', phone_connecting: '接続中…', phone_on: '接続済み', phone_rtt: '往復遅延 {ms} ms', phone_path: '経路 {proto}', phone_loss: '損失 {pct}%',
      phone_mic_ok: 'マイク入力あり', phone_mic_silent: 'マイクの音が入っていません',
      phone_err_blocked: 'マイクが許可されていません。ブラウザの設定でマイクを許可してください。',
      phone_err_ice: '接続できませんでした (ICE失敗)。ネットワークを確認して「再接続」を押してください。',
      phone_err_silence: '5秒間音声が届いていません。「再接続」を押してください。',
      phone_err_down: '音声の経路が途切れました (ネットワーク切断)。自動で再接続しています。戻らないときは「再接続」を押してください。',
      phone_err_failed: 'ブラウザフォンを接続できませんでした: {why}', phone_not_healthy: '通話品質チェックが終わるまで待機にできません。',
    },
    en: {
      title: 'Agent desktop', language: 'Language', menu: 'Menu', logout: 'Log out',
      ready: 'Ready', pause: 'Pause', pause_reason: 'Pause reason', resume: 'Resume', end: 'End',
      menu_work: 'Call jobs', menu_recalls: 'Recalls',
      conn_live: 'Live', conn_connecting: 'Connecting…', conn_retry: 'Reconnecting…', conn_idle: '',
      jobs_title: 'Call jobs', col_job: 'Call job', col_campaign: 'Campaign', col_mode: 'Mode',
      col_hours: 'Business hours', col_remaining: 'Remaining', col_notes: 'Notes', col_action: 'Action', start_job: 'Start calling',
      no_entries: 'Nothing registered',
      no_entries_hint: 'The call job may not be running, or you are not in its dialing group. Ask your manager.',
      confirm_start: 'Start the call job "{job}"?\nYour phone will ring.',
      setup_title: 'Calling your phone',
      setup_text: 'Your phone is ringing. Answer it to get to the waiting screen; do not hang it up afterwards.',
      wait_title: 'Waiting', paused_title: 'Paused', wait_time: 'Waiting', remaining: 'Remaining', job: 'Call job', mode: 'Mode',
      mode_preview: 'Preview', mode_progressive: 'Progressive', mode_predictive: 'Predictive',
      mode_standard: 'Standard', mode_distribute: 'Distribute', mode_dial: 'Dial',
      auto_text: 'Customers are dialled automatically. When one answers, they show here.',
      preview_title: 'Next customer', distribute_title: 'Distribute', standard_title: 'Find a lead', dial_title: 'Dial a number',
      dial: 'Dial', skip: 'Skip', assign: 'Assign me a lead', search: 'Search', select: 'Select', create_lead: 'Create lead',
      search_label: 'Name, kana or number', tel_label: 'Number (digits, no hyphens)', name_label: 'Name',
      no_data: 'No data', no_more_leads: 'No lead left to dial',
      held_by_other: 'Another agent works it', dialling: 'Dialling… the call screen shows when the customer answers.',
      nd_restricted: 'Do-not-call: the number is on the do-not-call list; no call was made.',
      nd_channel_limit: 'Channel limit: too many calls at once; no call was made.',
      nd_stopped: 'Stopped: the dialer is stopping; no call was made.', nd_number_in_call: 'The number is in a call already; no call was made.',
      nd_outside_hours: 'Outside business hours; no call was made.', nd_job_not_running: 'The call job is not running; no call was made.',
      nd_lead_not_dialable: 'This lead cannot be dialled (completed, or its turn is over).', nd_error: 'The call could not be made.',
      nd_caller_id_unknown: 'This caller ID cannot be used. Choose another caller ID.',
      transfer: 'Transfer', transfer_to: 'Transfer to', transfer_none: '(a ready agent)', confirm_transfer: 'Transfer the customer to {name}?',
      park: 'Park', confirm_park: 'Park the customer? (the same as #72 on the phone)', parked_title: 'Parked calls',
      parked_number: 'Park no.', parked_tel: 'Customer', parked_time: 'Parked', parked_none: 'No parked calls',
      parked_by: 'parked by {name}', pick_up: 'Call back', confirm_pick_up: 'Take park number {number} ({tel}) on your phone?',
      pick_up_not_ready: 'Calls are picked up while ready', pick_up_taken: 'Another agent picked up park number {number} first.',
      transfer_outside: 'Outside transfer', outside_number: 'Outside number', outside_saved: 'Saved outside numbers', outside_saved_none: 'Choose a saved number',
      conference: 'Conference', conf_drop: 'End conference', conf_leave: 'Leave conference',
      confirm_conference: 'Add {number} to the call?',
      conf_calling: 'Calling {number}. You are still talking with the customer.',
      conf_joined: 'Three-party call.',
      conf_busy: 'The number was busy. You are still talking with the customer.',
      conf_no_answer: 'Nobody answered within 30 seconds. You are still talking with the customer.',
      conf_refused: 'The number could not be reached. You are still talking with the customer.',
      conf_not_placed: 'The conference call could not be placed.',
      conf_channel_limit: 'The channel limit is reached: no conference now.',
      conf_party_hung_up: 'The third party hung up. You are still talking with the customer.', confirm_outside: 'Transfer the customer to {number}?',
      outside_calling: 'Calling {number}. The customer hears the waiting audio.',
      outside_busy: 'The number was busy. You are back with the customer.',
      outside_no_answer: 'Nobody answered within 30 seconds. You are back with the customer.',
      outside_refused: 'The number could not be reached. You are back with the customer.',
      outside_not_placed: 'The outside transfer could not be placed. You are back with the customer.',
      outside_channel_limit: 'The channel limit is reached: no outside transfer now.',
      caller_id: 'Caller ID', caller_id_job: "The call job's number ({n})", caller_id_withheld: 'Withheld (184)',
      call_title: 'Talking', offer_title: 'Connecting', wrapup_title: 'Wrap-up', hang_up: 'Hang up customer', hold: 'Hold', unhold: 'Take back from hold',
      confirm_hang_up: 'Hang up the customer?', confirm_save: 'Save the record?', confirm_end: 'End calling for this job?',
      acw_left: 'Wrap-up {t} left', basic_info: 'Customer', edit_lead: 'Correct', update_lead: 'Update', cancel: 'Cancel',
      f_name: 'Name', f_kana: 'Kana', f_tel: 'Number', f_other_numbers: 'Other numbers', f_remarks: 'Remarks', f_tags: 'Tags', f_attempts: 'Attempts',
      f_last_result: 'Last result', f_list: 'Customer list', lead_updated: 'Updated (recorded in the history)',
      record: 'Wrap-up record', interlocutor: 'Spoke with', self: 'The customer', other: 'Someone else', result: 'Result',
      other_tel: 'Other number', next_action: 'Next action', na_continue: 'Keep auto-dialling', na_recall: 'Recall at',
      na_complete: 'Complete', recall_at: 'Recall date and time', in_10m: 'In 10 min', in_1h: 'In 1 h', in_1d: 'In 1 day', assign_me: 'Assign to me',
      memo: 'Memo', state_after: 'State after saving', after_continue: 'Continue calling', after_break: 'Break', after_away: 'Away',
      after_end: 'End calling', save_next: 'Save and next', save_only: 'Save only', saved: 'Saved',
      save_after_call: 'The record can be saved once the call has ended.', recall_required: 'Enter the recall date and time',
      handed_on: 'This call went on with a colleague, who saves its record. Saving ends your wrap-up.',
      no_pause_reasons: 'No pause reasons',
      contacts: 'Earlier contacts', c_started: 'Dialled', c_saved: 'Saved', c_tel: 'Number', c_interlocutor: 'Spoke with',
      c_result: 'Result', c_next: 'Next action', c_talk: 'Talk time', c_agent: 'Agent', c_memo: 'Memo',
      no_contacts: 'No earlier contact', current_call: '(this call)',
      recalls_title: 'Recalls', r_due: 'Recall at', r_campaign: 'Campaign', r_name: 'Name and number', r_note: 'Note',
      dial_now: 'Dial now', no_time: 'No time set', due_now: 'Due',
      presence: 'Presence', no_colleagues: 'No other agent in your dialing groups',
      msg_title: 'Notice', msg_business_end: 'Business hours have ended. The call job has stopped.\nTo go on calling, start the call job again from the list during business hours.',
      msg_job_stopped: 'A manager stopped the call job.\nCalls in progress are not cut. End calling after your call.',
      msg_logged_off: 'You are logged off.\nYour phone was hung up during the call job, or you were idle longer than the limit.\nTo go on calling, start the call job again from the list.',
      msg_recall: 'A recall was assigned to you.',
      menu_callbacks: 'Callbacks', callbacks_title: 'Callbacks', cb_filter: 'Filter', cb_sort: 'Sort by',
      cb_asc: 'Ascending', cb_desc: 'Descending', cb_reload: 'Reload', cb_new: '{n} new', cb_status: 'Status', cb_assignee: 'Assignee',
      cb_open: 'Open', cb_done: 'Done', cb_me: 'Me', cb_none: 'No one (-)', cb_others: 'Others',
      cb_paging: 'Pages', cb_prev: 'Previous', cb_next: 'Next', cb_range: '{from}–{to} of {total}',
      cb_col_status: 'Status', cb_col_id: 'ID', cb_col_registered_at: 'Registered', cb_col_number: 'Number',
      cb_col_name: 'Name', cb_col_campaign_name: 'Call center', cb_col_label: 'Label', cb_col_assignee_name: 'Assignee',
      cb_col_memo: 'Memo', cb_col_recording: 'Recording', cb_detail: 'Callback {id}', cb_request_id: 'Request ID',
      cb_campaign: 'Call center', cb_label: 'Label', cb_unregistered: 'Not assigned', cb_assign: 'Assign to me',
      cb_assign_confirm: 'Assign this callback to you.', cb_edit: 'Edit', cb_save: 'Save', cb_cancel: 'Cancel', cb_play: 'Play',
      cb_stop: 'Stop', cb_dial: 'Call back', cb_status_needs_assignee: 'Editable once someone is assigned',
      cb_dial_hint: 'Dialled from your running call job while ready', cb_notify_new: 'A new callback was registered',
      cb_notify_assigned: 'A callback was assigned to you', cb_sort_by: 'Sort by {col}',
      network_error: 'Network error', not_ready_to_dial: 'You can dial when you are ready.',
      state_offline: 'Offline', state_ready: 'Ready', state_ringing: 'Ringing', state_talking: 'Talking',
      state_hold: 'Hold', state_wrap_up: 'Wrap-up', state_paused: 'Paused', state_unknown: 'Unknown',
      res_pending: 'Pending', res_busy: 'Busy', res_no_entry: 'No entry', res_timeout: 'No answer', res_cancel: 'Cancelled',
      res_error: 'Error', res_not_in_service: 'Not in service', res_channel_limit: 'Channel limit', res_restricted: 'Do-not-call', res_stopped: 'Stopped', res_abandoned: 'Abandoned',
      res_no_contact: 'No contact', res_fax: 'Fax', res_prospect: 'Prospect', res_recall: 'Recall', res_complaint: 'Complaint', default_results: 'Default statuses',
      phone_title: 'Browser phone', phone_mic: 'Microphone', phone_level: 'Microphone level', phone_mute: 'Mute', phone_unmute: 'Unmute',
      phone_check: 'Call quality check', phone_rejoin: 'Reconnect', phone_pad: 'Dial pad',
      phone_off: 'Not connected', phone_connecting: 'Connecting…', phone_on: 'Connected', phone_rtt: 'Round trip {ms} ms', phone_path: 'Path {proto}', phone_loss: 'Loss {pct}%',
      phone_mic_ok: 'Microphone heard', phone_mic_silent: 'No sound from the microphone',
      phone_err_blocked: 'The microphone is blocked. Allow it in the browser\'s settings.',
      phone_err_ice: 'Could not connect (ICE failed). Check the network and press Reconnect.',
      phone_err_silence: 'No audio has arrived for 5 seconds. Press Reconnect.',
      phone_err_down: 'The audio path was cut (network). Reconnecting by itself; if it does not come back, press Reconnect.',
      phone_err_failed: 'The browser phone could not connect: {why}', phone_not_healthy: 'You can go ready once the call quality check has passed.',
    },
  };
  // The wallboard's colours.
  const STATE_COLORS = {
    ready: '#2e9d4f', ringing: '#d99a16', talking: '#2f6fd6', hold: '#7b5cd6', wrap_up: '#13989a',
    paused: '#c0622f', unknown: '#8a1c1c', offline: '#8d949b',
  };

  // ------------------------------------------------------------------------------------------ state
  /** The causes of an agent's wrap-up whose call went on with a colleague. */
  const HANDED_ON = ['transferred', 'parked'];
  const S = {
    lang: localStorage.getItem('kakeru.lang') === 'en' ? 'en' : 'ja',
    token: sessionStorage.getItem('kakeru.token'),
    me: null,
    reasons: new Map(),
    menu: 'work',
    state: { state: 'offline' },
    since: Date.now(),
    legUp: false,
    dialling: false,
    callId: null,
    leadId: null,
    lead: null, // GET /agent/leads/{id}
    bridgeAt: null,
    // The lead whose screen pop the stream is to send next (after a `bridge`).
    awaitPop: null,
    job: null,
    remaining: null,
    jobs: null,
    recalls: [],
    // 折り返し呼一覧: the page shown, its query, and what arrived since it was loaded.
    cb: {
      items: [], total: 0, newest: null, offset: 0, q: '', sort: 'id', desc: true, sel: null,
      fresh: new Set(), mine: new Set(), editing: null, problem: null, loaded: false, audio: null,
    },
    presence: new Map(),
    parked: [],
    mode: { lead: null, results: null, searched: '', notice: '' },
    // 発番号: GET /agent/caller-ids (loaded with the job), and the one the agent chose ('' = the job's).
    callerIds: null,
    // 外線転送's saved numbers (GET /outside-transfers), read once a session.
    outsideSaved: null,
    callerId: '',
    messages: [],
    savedCall: null,
    editing: false,
    lastId: null,
    es: null,
    retryMs: 1000,
    retryTimer: 0,
    stats: { events: 0, connects: 0, pops: [], trail: [] },
  };
  S.stats.notifications = [];
  window.__desk = S.stats;

  const $ = (id) => document.getElementById(id);
  const t = (key, vars) => {
    let s = (I18N[S.lang] && I18N[S.lang][key]) || I18N.ja[key] || key;
    for (const [k, v] of Object.entries(vars || {})) s = s.replace(`{${k}}`, v);
    return s;
  };
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  };
  const FORMATS = { ja: new Intl.NumberFormat('ja-JP'), en: new Intl.NumberFormat('en-US') };
  const num = (n) => (n === null || n === undefined ? '—' : FORMATS[S.lang].format(n));
  const duration = (ms) => {
    const s = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const ss = String(s % 60).padStart(2, '0');
    return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
  };
  // Times come from the server in the tenant's zone (RFC 3339 with its offset).
  const when = (s) => (s ? s.slice(0, 16).replace('T', ' ') : '—');
  const stateName = () => (S.state && S.state.state) || 'offline';
  const stateLabel = (st) => {
    const name = (st && st.state) || 'offline';
    if (name === 'paused' && S.reasons.has(st.reason_id)) return `${t('state_paused')}: ${S.reasons.get(st.reason_id).name}`;
    return t(`state_${name}`);
  };
  const stateColor = (st) => {
    const name = (st && st.state) || 'offline';
    if (name === 'paused' && S.reasons.has(st.reason_id) && S.reasons.get(st.reason_id).color) return S.reasons.get(st.reason_id).color;
    return STATE_COLORS[name] || STATE_COLORS.unknown;
  };
  const inkFor = (hex) => {
    const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex || '');
    const lum = m ? m.slice(1).map((x) => parseInt(x, 16) / 255).reduce((a, v, i) => a + [0.2126, 0.7152, 0.0722][i] * v, 0) : 0;
    return lum > 0.6 ? '#111' : '#fff';
  };
  const resultLabel = (r, codes) => {
    if (r === null || r === undefined) return '—';
    const c = (codes || []).find((x) => String(x.number) === String(r));
    if (c) return `${c.number}: ${c.label}`;
    return I18N[S.lang][`res_${r}`] || I18N.ja[`res_${r}`] || r;
  };

  // -------------------------------------------------------------------------------------------- API
  class HttpError extends Error {
    constructor(status, body) {
      super((body && body.error && body.error.message) || `HTTP ${status}`);
      this.status = status;
      this.field = body && body.error && body.error.field;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json', Authorization: `Bearer ${S.token}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let r;
    try {
      r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (_) {
      throw new HttpError(0, { error: { message: t('network_error') } });
    }
    const text = await r.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
    if (r.status === 401) toLogin();
    if (!r.ok) throw new HttpError(r.status, json);
    return json;
  }

  /** Shows an API error on the field it names (an element `e-<field>`), else on `fallback`. */
  function showError(e, fallback) {
    const target = (e.field && $(`e-${e.field}`)) || $(fallback);
    if (target) target.textContent = e.message;
  }

  function toLogin() {
    sessionStorage.removeItem('kakeru.token');
    location.assign('/');
  }

  // The browser phone (ui/phone.js, a module) works through these: the one catalogue, the API with
  // the agent's token, the job; it hears the push channel's notices and the agent's states as
  // `kakeru:*` events, and answers `window.kakeruPhone.beforeStart()` / `.readyAllowed()`.
  // sessionStarted: the phone started the job's session again itself (a rejoin): the stream follows
  // it as after 発信開始 (its scope, the job's remaining leads and business end, a fresh snapshot).
  window.kakeruDesk = { t, api, job: () => S.job, state: () => stateName(), render: () => render(), sessionStarted: () => connect() };
  const tell = (name, detail) => document.dispatchEvent(new CustomEvent(`kakeru:${name}`, { detail }));

  // ---------------------------------------------------------------------------------------- dialogs
  /** A message or a confirmation (the seeds' 保存しますか? / 切断しますか?); resolves true on OK. */
  function dialog(text, confirm) {
    return new Promise((resolve) => {
      const d = $('dlg');
      $('dlg-title').textContent = t('msg_title');
      $('dlg-text').textContent = text;
      $('dlg-cancel').hidden = !confirm;
      const done = () => {
        d.removeEventListener('close', done);
        resolve(d.returnValue === 'ok');
      };
      d.addEventListener('close', done);
      d.returnValue = '';
      d.showModal();
      $('dlg-ok').focus();
    });
  }

  /** Messages wait for the end of a call (BIZTEL: shown on the screen after the call). */
  function message(key) {
    S.messages.push(key);
    flushMessages();
  }

  async function flushMessages() {
    if (['talking', 'hold', 'wrap_up'].includes(stateName()) || $('dlg').open) return;
    const key = S.messages.shift();
    if (!key) return;
    await dialog(t(key), false);
    flushMessages();
  }

  // ----------------------------------------------------------------------------------------- stream
  function setConn(state) {
    $('conn').dataset.state = state;
    $('conn').textContent = t(`conn_${state}`);
  }

  function stopStream() {
    clearTimeout(S.retryTimer);
    if (S.es) S.es.close();
    S.es = null;
  }

  async function connect() {
    stopStream();
    awaitedPopByRequest();
    setConn(S.lastId ? 'retry' : 'connecting');
    let ticket;
    try {
      ticket = (await api('POST', '/agent/tickets')).ticket;
    } catch (e) {
      return retry();
    }
    // pop=1: the stream sends the screen pop right after each bridge.
    const q = new URLSearchParams({ ticket, pop: '1' });
    if (S.lastId) q.set('last_event_id', S.lastId);
    const es = new EventSource(`/agent/stream?${q}`);
    S.es = es;
    S.stats.connects++;
    const on = (name, f) => es.addEventListener(name, (m) => {
      S.stats.events++;
      // The last events, for the browser tests' failure reports (bounded).
      S.stats.trail.push(`${name} ${m.lastEventId} ${m.data.slice(0, 160)}`);
      if (S.stats.trail.length > 50) S.stats.trail.shift();
      if (m.lastEventId) S.lastId = m.lastEventId;
      f(JSON.parse(m.data));
    });
    es.addEventListener('open', () => { S.retryMs = 1000; setConn('live'); });
    on('desk', onDesk);
    on('state', onState);
    on('bridge', onBridge);
    on('pop', onPop);
    on('notice', onNotice);
    on('remaining', (d) => { if (S.job && d.campaign_id === S.job.campaign_id) { S.remaining = d.remaining; render(); } });
    on('presence', (d) => { for (const a of d.agents) { const p = S.presence.get(a.agent_id); if (p) { p.state = { ...a }; p.since_ms = a.since_ms; } } renderPresence(); });
    // A dropped stream: the EventSource would retry with the spent ticket; take a new one and
    // resume after the last event seen.
    es.addEventListener('error', () => { if (S.es === es) retry(); });
  }

  function retry() {
    if (S.es) S.es.close();
    S.es = null;
    setConn('retry');
    clearTimeout(S.retryTimer);
    S.retryTimer = setTimeout(connect, S.retryMs);
    S.retryMs = Math.min(S.retryMs * 2, 15000);
  }

  // ----------------------------------------------------------------------------------------- events
  function onDesk(d) {
    S.state = d.state || { state: 'offline' };
    S.since = d.since_ms || Date.now();
    S.legUp = !!d.leg_up;
    S.dialling = !!d.dialling;
    S.job = d.job;
    S.agentId = d.agent_id;
    S.remaining = d.remaining;
    S.deskCodes = d.result_codes || [];
    S.deskDefaults = d.default_results || [];
    S.recallCounts = d.recalls;
    S.caller = d.caller || null;
    if (d.call_id) S.callId = d.call_id;
    if (d.lead_id && (['talking', 'hold', 'wrap_up'].includes(stateName()) || (stateName() === 'ringing' && S.callId))) {
      if (d.lead_id !== S.leadId || !S.lead) loadLead(d.lead_id);
    } else if (!['talking', 'hold', 'wrap_up', 'ringing'].includes(stateName())) {
      clearCall();
    }
    if (!S.job || stateName() === 'offline') loadJobs();
    loadRecalls();
    loadPresence();
    loadParked();
    if (!S.outsideSaved) loadOutsideSaved();
    enterWaiting();
    render();
  }

  function clearCall() {
    S.handedOn = false;
    S.caller = null;
    S.callId = null;
    S.leadId = null;
    S.lead = null;
    S.bridgeAt = null;
    S.savedCall = null;
    S.editing = false;
  }

  function onState(d) {
    if (d.at_ms < S.since) return; // older than what the page shows (repeated after a snapshot)
    const before = stateName();
    S.state = d.to;
    S.since = d.at_ms;
    const to = d.to.state;
    const cause = (d.cause && d.cause.cause) || '';
    if (cause === 'login') { S.legUp = false; clearCall(); }
    if (cause === 'agent_leg_up') S.legUp = true;
    if (cause === 'preview_dial') { S.dialling = true; S.mode.notice = ''; }
    if (cause === 'not_dialled') {
      S.dialling = false;
      // Kept with the lead: an answer to a request that arrives after this does not bring it back.
      S.mode.refused = { lead: d.lead_id, key: `nd_${d.not_dialled || 'error'}` };
      S.mode.lead = null;
    }
    if (to === 'talking' || to === 'hold' || to === 'wrap_up' || (to === 'ringing' && d.call_id)) {
      if (d.call_id && d.call_id !== S.callId) { clearCall(); S.callId = d.call_id; }
      // 転送 or パーク保留: the call and its record went on with a colleague.
      if (to === 'wrap_up' && HANDED_ON.includes(cause)) {
        S.handedOn = true;
        $('saved-note').dataset.i18n = 'handed_on';
        $('saved-note').textContent = t('handed_on');
      }
      if (to === 'talking') { S.dialling = false; S.mode.lead = null; S.mode.results = null; S.mode.refused = null; }
      if (d.lead_id && d.lead_id !== S.leadId) loadLead(d.lead_id);
    }
    if (to === 'ready' || to === 'paused' || to === 'offline' || to === 'unknown') {
      S.dialling = false;
      clearCall();
    }
    if (to === 'offline' || to === 'unknown') {
      S.legUp = false;
      // A browser phone's leg that went down is rejoined by the page itself, which says so (phone.js).
      const rejoins = cause === 'agent_leg_down' && window.kakeruPhone && window.kakeruPhone.rejoinsItself();
      if ((cause === 'idle_timeout' || cause === 'agent_leg_down' || cause === 'phone_unreachable') && !rejoins) message('msg_logged_off');
      if (to === 'offline') { S.job = null; S.mode.lead = null; loadJobs(); }
    }
    if (to === 'ready' && before !== 'ready') enterWaiting();
    render();
    flushMessages();
    tell('state', { state: to, cause });
  }

  function onBridge(d) {
    if (d.call_id !== S.callId) { S.lead = null; S.leadId = null; S.callId = d.call_id; }
    if (S.lead && d.lead_id && S.lead.lead.id === d.lead_id) {
      S.stats.pops.push(Date.now() - d.at_ms); // already on screen (the offer named the lead)
      return;
    }
    S.bridgeAt = d.at_ms;
    if (d.lead_id) {
      // The stream sends the screen pop right after (`pop`): no request of the page's own.
      S.leadId = d.lead_id;
      S.loadingLead = d.lead_id;
      S.awaitPop = d.lead_id;
    }
    else {
      api('GET', '/agent/desk').then((x) => {
        if (x.lead_id) loadLead(x.lead_id);
        else { S.caller = x.caller || null; render(); }
      }).catch(() => {});
    }
  }

  function onPop(d) {
    if (S.awaitPop !== d.lead_id) return;
    S.awaitPop = null;
    S.loadingLead = null;
    if (!d.pop) { loadLead(d.lead_id); return; }
    if (S.leadId !== d.lead_id) return;
    S.lead = d.pop;
    render();
    popShown();
  }

  /** A pop awaited from a stream that dropped: asked for instead. */
  function awaitedPopByRequest() {
    if (!S.awaitPop) return;
    const id = S.awaitPop;
    S.awaitPop = null;
    S.loadingLead = null;
    loadLead(id);
  }

  function popShown() {
    if (S.bridgeAt) {
      // The screen pop's time, from control's bridge to the lead on screen (bench/RESULTS.md).
      S.stats.pops.push(Date.now() - S.bridgeAt);
      S.bridgeAt = null;
    }
  }

  function onNotice(d) {
    tell('notice', d);
    if (d.notice === 'business_end') message('msg_business_end');
    else if (d.notice === 'job_stopped') message('msg_job_stopped');
    else if (d.notice === 'recall_assigned') loadRecalls();
    else if (d.notice === 'park_changed') parkChanged(d);
    else if (d.notice === 'callback_registered' || d.notice === 'callback_assigned') callbackPushed(d);
    else if (d.notice === 'outside_transfer') outsideDone(d);
    else if (d.notice === 'conference') conferenceNews(d);
  }

  /** 電話会議's news: joined, or why the third party left or never came. */
  function conferenceNews(d) {
    if (d.outcome === 'joined') {
      if (S.callId === d.call_id) S.conf = { call: d.call_id, state: 'joined' };
      return outsideSay('conf_joined', {}, d.call_id);
    }
    if (S.conf && S.conf.call === d.call_id) S.conf = null;
    const key = `conf_${d.outcome}`;
    if (I18N.ja[key]) return outsideSay(key, {}, d.call_id);
    S.outsideMsg = null;
    $('banner').hidden = true;
    render();
  }

  /** 外線転送's outcome: answered (the state goes to wrap-up on its own), or why the customer is back. */
  function outsideDone(d) {
    if (S.outsideCall === d.call_id) S.outsideCall = null;
    if (d.outcome === 'answered') { S.outsideMsg = null; $('banner').hidden = true; render(); return; }
    const key = `outside_${d.outcome}`;
    outsideSay(I18N.ja[key] ? key : 'outside_refused', {}, d.call_id);
  }

  /** 外線転送's news in the banner, in the page's language (kept while that call is on screen). */
  function outsideSay(key, vars, call) {
    S.outsideMsg = { key, vars, call };
    render();
  }

  // ------------------------------------------------------------------------------------------ loads
  async function loadLead(id) {
    if (S.leadId === id && (S.lead || S.loadingLead === id)) return;
    S.leadId = id;
    S.loadingLead = id;
    try {
      const r = await api('GET', `/agent/leads/${id}`);
      if (S.leadId !== id) return;
      S.lead = r;
      render();
      popShown();
    } catch (e) {
      $('banner').hidden = false;
      $('banner').textContent = e.message;
    } finally {
      if (S.loadingLead === id) S.loadingLead = null;
    }
  }

  async function loadJobs() {
    try {
      S.jobs = (await api('GET', '/agent/jobs')).items;
      $('jobs-error').textContent = '';
    } catch (e) {
      S.jobs = [];
      $('jobs-error').textContent = e.message;
    }
    render();
  }

  async function loadRecalls() {
    try {
      S.recalls = (await api('GET', '/agent/recalls')).items;
    } catch (e) {
      $('recalls-error').textContent = e.message;
    }
    render();
  }

  /** 外線転送: the tenant's saved outside numbers (the console's 外線転送), read once a session;
   * choosing one fills the number field. None saved: the list stays hidden. */
  async function loadOutsideSaved() {
    S.outsideSaved = [];
    try {
      S.outsideSaved = (await api('GET', '/outside-transfers?sort=name&limit=200')).items;
    } catch (e) {
      S.outsideSaved = null; // read again with the next state
    }
    render();
  }

  // ------------------------------------------------------------------------------ パーク保留 (parked)
  async function loadParked() {
    try {
      S.parked = (await api('GET', '/agent/parked')).items;
      $('parked-error').textContent = '';
    } catch (e) {
      $('parked-error').textContent = e.message;
    }
    renderParked();
  }

  /** A park made or ended (the push channel): the list is read again; a park the read does not
   * show yet (its commit follows the notice) is shown from the notice until the next read. */
  async function parkChanged(d) {
    // The park this page asked for went to a colleague (a pick-up keyed on a phone came first).
    // (Only just after the ask: a pick-up control refused for another reason leaves no notice.)
    const asked = S.pickingUp && S.pickingUp.number === d.number && Date.now() - S.pickingUp.at < 10000;
    const lost = d.change === 'picked_up' && asked && d.agent_id !== S.agentId;
    if (d.change !== 'parked' && asked) S.pickingUp = null;
    await loadParked();
    if (lost) $('parked-error').textContent = t('pick_up_taken', { number: d.number });
    if (d.change === 'parked' && !S.parked.some((p) => p.number === d.number)) {
      S.parked = [...S.parked, { number: d.number, call_id: d.call_id, tel: null, parked_by: d.agent_id, parked_at_ms: d.at_ms }]
        .sort((a, b) => a.number - b.number);
      renderParked();
      setTimeout(loadParked, 1000);
    } else if (d.change !== 'parked' && S.parked.some((p) => p.number === d.number && p.call_id === d.call_id)) {
      S.parked = S.parked.filter((p) => p.call_id !== d.call_id);
      renderParked();
      setTimeout(loadParked, 1000);
    }
  }

  function renderParked() {
    const now = Date.now();
    $('parked-count').textContent = String(S.parked.length);
    $('parked-table').hidden = S.parked.length === 0;
    $('parked-empty').hidden = S.parked.length > 0;
    $('parked-body').replaceChildren(...S.parked.map((p) => {
      const tr = el('tr');
      tr.dataset.number = String(p.number);
      const b = el('button', 'link', String(p.number));
      b.type = 'button';
      b.title = p.parked_by_name ? t('parked_by', { name: p.parked_by_name }) : '';
      b.setAttribute('aria-label', `${t('pick_up')} ${p.number}`);
      b.addEventListener('click', () => pickUp(p));
      const time = el('td', 'parked-time', duration(now - p.parked_at_ms));
      time.dataset.since = String(p.parked_at_ms);
      const num = el('td');
      num.append(b);
      tr.append(num, el('td', '', p.tel || '-'), time);
      return tr;
    }));
  }

  async function pickUp(p) {
    if (stateName() !== 'ready') { $('parked-error').textContent = t('pick_up_not_ready'); return; }
    if (!(await dialog(t('confirm_pick_up', { number: p.number, tel: p.tel || '-' }), true))) return;
    try {
      await api('POST', `/agent/parked/${p.number}/pick-up`);
      $('parked-error').textContent = '';
      // Accepted; a pick-up keyed on a colleague's phone at the same moment may still come first.
      S.pickingUp = { number: p.number, at: Date.now() };
    } catch (e) {
      $('parked-error').textContent = e.message;
      loadParked();
    }
  }

  async function loadPresence() {
    try {
      const r = await api('GET', '/agent/presence');
      S.presence = new Map(r.items.map((a) => [a.agent_id, a]));
    } catch (_) { /* shown as empty */ }
    renderPresence();
  }

  /** Back in the waiting screen: preview mode shows the next lead at once. */
  function enterWaiting() {
    if (!S.job || stateName() !== 'ready') return;
    if (S.job.mode === 'preview' && !S.mode.lead && !S.dialling) nextPreview();
  }

  async function nextPreview() {
    try {
      const r = await api('POST', '/agent/preview');
      S.mode.lead = r.lead;
      if (r.lead && S.mode.refused && S.mode.refused.lead !== r.lead.lead_id) S.mode.refused = null;
      if (!r.lead) S.mode.notice = t('no_more_leads');
    } catch (e) {
      S.mode.notice = e.message;
    }
    render();
  }

  // ---------------------------------------------------------------------------------------- actions
  async function act(f, errTarget) {
    try {
      await f();
    } catch (e) {
      if (errTarget) showError(e, errTarget);
      else { $('banner').hidden = false; $('banner').textContent = e.message; }
    }
  }

  async function startJob(job) {
    if (!(await dialog(t('confirm_start', { job: job.name }), true))) return;
    // A browser phone offers its leg first (the dialer keeps the offer for the job's leg).
    if (window.kakeruPhone && !(await window.kakeruPhone.beforeStart(job))) return;
    await act(async () => {
      await api('POST', '/agent/session', { call_job_id: job.id });
      S.job = job;
      S.remaining = job.remaining;
      S.menu = 'work';
      // A new job starts with an empty search (a name searched in standard mode is no number to dial).
      S.mode = { lead: null, results: null, searched: '', notice: '' };
      S.callerIds = null;
      S.callerId = '';
      // The stream's scope (the job's notices, its remaining leads) follows the session.
      connect();
    }, 'jobs-error');
  }

  async function endJob() {
    if (!(await dialog(t('confirm_end'), true))) return;
    await act(() => api('DELETE', '/agent/session'));
  }

  async function dialLead(body, preview) {
    if (stateName() !== 'ready') { S.mode.notice = t('not_ready_to_dial'); return render(); }
    S.mode.notice = '';
    render();
    // The agent's transitions (preview_dial, then the call or not_dialled) may arrive before the
    // answer: they set what the page shows.
    await act(() => api('POST', preview ? '/agent/preview/dial' : '/agent/dial', body));
  }

  async function saveRecord(next) {
    $('record-error').textContent = '';
    for (const f of ['result', 'other_tel', 'recall_at', 'memo']) $(`e-${f}`).textContent = '';
    if (!['wrap_up'].includes(stateName()) && S.callId && ['talking', 'hold', 'ringing'].includes(stateName())) {
      $('record-error').textContent = t('save_after_call');
      return;
    }
    const nextAction = document.querySelector('input[name="next_action"]:checked').value;
    const body = {
      interlocutor: document.querySelector('input[name="interlocutor"]:checked').value,
      result: $('r-result').value,
      other_tel: $('r-other-tel').value.trim() || null,
      next_action: nextAction,
      memo: $('r-memo').value,
      state_after: $('r-after').value,
    };
    if (nextAction === 'recall') {
      if (!$('r-recall-at').value) { $('e-recall_at').textContent = t('recall_required'); return; }
      body.recall_at = toRfc3339($('r-recall-at').value);
      body.recall_to_agent = $('r-to-me').checked;
    }
    if (!next) body.keep_state = true;
    if (!(await dialog(t('confirm_save'), true))) return;
    if (S.handedOn && stateName() === 'wrap_up') return act(() => endHandedOnWrapUp(body.state_after), 'record-error');
    await act(async () => {
      // The record is made when the call ends (control commits it a moment after the event).
      let rec = null;
      for (let i = 0; i < 10 && !rec; i++) {
        const r = await api('GET', `/wrapup-records?agent_user_id=${S.me.id}&saved=false&lead_id=${S.leadId}`);
        rec = r.items[0] || null;
        if (!rec) await new Promise((res) => setTimeout(res, 200));
      }
      if (!rec) throw new HttpError(409, { error: { message: t('save_after_call') } });
      await api('POST', `/wrapup-records/${rec.id}/save`, body);
      S.savedCall = S.callId;
      $('saved-note').dataset.i18n = 'saved';
      $('saved-note').textContent = t('saved');
      if (body.recall_to_agent) loadRecalls();
      resetRecordForm();
      render();
    }, 'record-error');
  }

  /** The wrap-up of a call handed on (its record is the colleague's): the state chosen after it. */
  async function endHandedOnWrapUp(after) {
    if (after === 'end_job') await api('DELETE', '/agent/session');
    else if (after === 'continue') await api('POST', '/agent/ready');
    else {
      const names = after === 'break' ? ['break', '休憩'] : ['away', '離席'];
      const reasons = [...S.reasons];
      const named = reasons.find(([, r]) => names.some((n) => r.name.trim().toLowerCase() === n));
      const pick = named || reasons[0];
      if (!pick) throw new HttpError(422, { error: { message: t('no_pause_reasons') } });
      await api('POST', '/agent/pause', { reason_id: pick[0] });
    }
    resetRecordForm();
  }

  function resetRecordForm() {
    $('record-form').reset();
    $('recall-box').hidden = true;
    $('memo-count').textContent = `0 / ${num(5000)}`;
  }

  // The tenant's zone offset at an instant, e.g. +540 for Asia/Tokyo.
  function zoneOffsetMin(date) {
    const tz = (S.me && S.me.time_zone) || 'Asia/Tokyo';
    const parts = new Intl.DateTimeFormat('en-US', { timeZone: tz, timeZoneName: 'longOffset' }).formatToParts(date);
    const name = (parts.find((p) => p.type === 'timeZoneName') || {}).value || 'GMT';
    const m = /GMT([+-])(\d\d):(\d\d)/.exec(name);
    return m ? (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) : 0;
  }

  /** A datetime-local value, read in the tenant's zone, as RFC 3339. */
  function toRfc3339(local) {
    const guess = new Date(`${local}:00Z`);
    const off = zoneOffsetMin(guess);
    const sign = off < 0 ? '-' : '+';
    const a = Math.abs(off);
    return `${local}:00${sign}${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`;
  }

  /** Now + minutes, in the tenant's zone, as a datetime-local value. */
  function localIn(minutes) {
    const d = new Date(Date.now() + minutes * 60000);
    const shifted = new Date(d.getTime() + zoneOffsetMin(d) * 60000);
    return shifted.toISOString().slice(0, 16);
  }

  // -------------------------------------------------------------------------------------- rendering
  function whichView() {
    if (S.menu === 'recalls') return 'recalls';
    if (S.menu === 'callbacks') return 'callbacks';
    const st = stateName();
    if (!S.job || st === 'offline' || st === 'unknown') return 'jobs';
    if (st === 'ringing' && !S.legUp) return 'setup';
    if (['talking', 'hold', 'wrap_up'].includes(st)) return 'call';
    if (st === 'ringing' && S.callId && !S.dialling) return 'call';
    return 'wait';
  }

  function render() {
    const v = whichView();
    for (const id of ['jobs', 'setup', 'wait', 'call', 'recalls', 'callbacks']) $(`v-${id}`).hidden = id !== v;
    $('m-work').setAttribute('aria-current', S.menu === 'work' ? 'page' : 'false');
    $('m-recalls').setAttribute('aria-current', S.menu === 'recalls' ? 'page' : 'false');
    $('m-callbacks').setAttribute('aria-current', S.menu === 'callbacks' ? 'page' : 'false');
    renderStatus();
    if (v === 'jobs') renderJobs();
    if (v === 'wait') renderWait();
    if (v === 'call') renderCall();
    if (v === 'recalls') renderRecalls();
    if (v === 'callbacks') renderCallbacks();
    renderBadge();
    tick();
  }

  function renderStatus() {
    const box = $('me-state');
    const color = stateColor(S.state);
    box.style.setProperty('--bg', color);
    box.style.setProperty('--ink', inkFor(color));
    box.dataset.state = stateName();
    $('me-state-label').textContent = stateLabel(S.state);
    const st = stateName();
    const inSession = S.job && st !== 'offline' && st !== 'unknown';
    $('b-ready').disabled = !(inSession && (st === 'paused' || st === 'wrap_up')) || !!(window.kakeruPhone && !window.kakeruPhone.readyAllowed());
    $('b-pause').disabled = !inSession || S.reasons.size === 0;
    $('pause-reason').disabled = !inSession || S.reasons.size === 0;
  }

  function renderJobs() {
    const jobs = S.jobs || [];
    $('jobs-table').hidden = jobs.length === 0;
    $('jobs-empty').hidden = jobs.length > 0 || S.jobs === null;
    $('jobs-hint').hidden = jobs.length > 0 || S.jobs === null;
    $('jobs-body').replaceChildren(...jobs.map((j) => {
      const tr = el('tr');
      const b = el('button', 'act primary', t('start_job'));
      b.type = 'button';
      b.dataset.job = String(j.id);
      b.setAttribute('aria-label', `${t('start_job')} ${j.name}`);
      b.addEventListener('click', () => startJob(j));
      const td = el('td');
      td.append(b);
      tr.append(el('td', '', j.name), el('td', '', j.campaign_name), el('td', '', t(`mode_${j.mode}`)),
        el('td', '', `${j.business_start}–${j.business_end}`), el('td', 'num', num(j.remaining)), el('td', 'notes', j.notes || ''), td);
      return tr;
    }));
  }

  function leadPreview(l) {
    const box = el('div', 'lead-preview');
    const dl = el('dl', 'lead');
    const row = (k, v) => { dl.append(el('dt', '', t(k)), el('dd', '', v === null || v === undefined || v === '' ? '—' : String(v))); };
    row('f_name', l.name);
    row('f_kana', l.kana);
    row('f_tel', l.tel);
    if ('remarks' in l) row('f_remarks', l.remarks);
    row('f_attempts', num(l.attempts));
    row('f_last_result', resultLabel(l.last_result, S.deskCodes));
    if (l.recall) row('r_due', when(l.recall.due_at) || t('no_time'));
    box.append(dl);
    return box;
  }

  /** 発番号: the caller ID the next manual dial goes out with (the job's unless the agent picks one). */
  function callerIdPicker() {
    const row = el('div', 'search-row');
    const lab = el('label', '', t('caller_id'));
    const sel = el('select');
    sel.id = 'caller-id';
    lab.htmlFor = 'caller-id';
    sel.dataset.key = KEYS.caller_id;
    sel.setAttribute('aria-keyshortcuts', `Alt+${KEYS.caller_id.toUpperCase()}`);
    const kbd = el('kbd', '', `Alt+${KEYS.caller_id.toUpperCase()}`);
    kbd.setAttribute('aria-hidden', 'true');
    const c = S.callerIds;
    const def = el('option', '', c && c.default ? t('caller_id_job', { n: c.default }) : t('caller_id_withheld'));
    def.value = '';
    sel.append(def);
    for (const x of (c ? c.items : [])) {
      const o = el('option', '', x.label ? `${x.number} (${x.label})` : x.number);
      o.value = String(x.id);
      sel.append(o);
    }
    sel.value = S.callerId;
    sel.addEventListener('change', () => { S.callerId = sel.value; });
    row.append(lab, sel, kbd);
    if (!c) {
      S.callerIds = { items: [], default: null };
      api('GET', '/agent/caller-ids').then((r) => { S.callerIds = r; render(); }).catch(() => { S.callerIds = null; });
    }
    return row;
  }

  function button(key, onClick, cls = 'act') {
    const b = el('button', cls);
    b.type = 'button';
    b.dataset.i18n = key;
    const k = KEYS[key];
    if (k) b.dataset.key = k;
    label(b);
    b.addEventListener('click', onClick);
    return b;
  }

  function renderWait() {
    const st = stateName();
    $('wait-title').textContent = st === 'paused' ? stateLabel(S.state) : t('wait_title');
    $('wait-remaining').textContent = num(S.remaining);
    $('wait-job').textContent = S.job ? S.job.name : '—';
    $('wait-mode').textContent = S.job ? t(`mode_${S.job.mode}`) : '—';
    $('wait-notes').textContent = S.job && S.job.notes ? S.job.notes : '';
    $('wait-notes-row').hidden = !(S.job && S.job.notes);
    $('b-resume').hidden = st !== 'paused';
    $('dialling').hidden = !S.dialling;
    $('dialling').textContent = t('dialling');
    const panel = $('mode-panel');
    const mode = S.job ? S.job.mode : '';
    const refused = S.mode.refused;
    if (refused && S.mode.lead && (S.mode.lead.id || S.mode.lead.lead_id) === refused.lead) S.mode.lead = null;
    // Rebuilt only when what it shows changes, so that what the agent is typing stays.
    const key = JSON.stringify([S.lang, mode, st, S.dialling, S.mode.lead, S.mode.results, S.mode.notice, refused, S.callerIds]);
    if (panel.dataset.key === key) return;
    panel.dataset.key = key;
    const box = el('div', 'mode-box');
    const notice = el('p', 'field-error', refused ? t(refused.key) : S.mode.notice);
    notice.setAttribute('role', 'alert');
    notice.id = 'mode-notice';
    const ready = st === 'ready' && !S.dialling;
    if (mode === 'progressive' || mode === 'predictive') {
      box.append(el('p', 'hint', t('auto_text')));
    } else if (mode === 'preview' || mode === 'distribute') {
      box.append(el('h2', '', t(mode === 'preview' ? 'preview_title' : 'distribute_title')));
      if (mode === 'distribute') {
        const a = button('assign', nextPreview);
        a.disabled = !ready;
        box.append(a);
      }
      if (S.mode.lead) {
        box.append(leadPreview(S.mode.lead));
        const row = el('div', 'row-actions');
        const d = button('dial', () => dialLead({ lead_id: S.mode.lead.lead_id }, true), 'act primary');
        d.disabled = !ready;
        const s = button('skip', async () => {
          await act(() => api('POST', '/agent/preview/skip', { lead_id: S.mode.lead.lead_id }));
          S.mode.lead = null;
          if (mode === 'preview') nextPreview(); else render();
        });
        s.disabled = !ready;
        row.append(d, s);
        box.append(row);
      }
    } else if (mode === 'standard' || mode === 'dial') {
      box.append(el('h2', '', t(mode === 'standard' ? 'standard_title' : 'dial_title')));
      const form = el('form', 'search-row');
      const lab = el('label', 'sr', t(mode === 'standard' ? 'search_label' : 'tel_label'));
      const input = el('input');
      input.id = 'lead-query';
      lab.htmlFor = 'lead-query';
      input.value = S.mode.searched;
      input.setAttribute('aria-label', t(mode === 'standard' ? 'search_label' : 'tel_label'));
      input.placeholder = t(mode === 'standard' ? 'search_label' : 'tel_label');
      if (mode === 'dial') input.inputMode = 'numeric';
      const go = el('button', 'act', t('search'));
      go.type = 'submit';
      form.append(lab, input, go);
      const err = el('p', 'field-error');
      err.id = mode === 'standard' ? 'e-q' : 'e-tel';
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        S.mode.searched = input.value.trim();
        S.mode.lead = null;
        S.mode.refused = null;
        act(async () => {
          const q = mode === 'standard' ? `q=${encodeURIComponent(S.mode.searched)}` : `tel=${encodeURIComponent(S.mode.searched)}`;
          S.mode.results = (await api('GET', `/agent/leads?${q}`)).items;
          render();
          $('lead-query').focus();
        }, err.id);
      });
      box.append(form, err);
      if (S.mode.lead) {
        box.append(leadPreview(S.mode.lead));
        const d = button('dial', () => {
          const body = { lead_id: S.mode.lead.id };
          if (S.callerId) body.caller_id = Number(S.callerId);
          dialLead(body, false);
        }, 'act primary');
        d.disabled = !ready;
        box.append(callerIdPicker(), d);
      } else if (S.mode.results && S.mode.results.length) {
        const table = el('table', 'grid');
        const head = el('tr');
        for (const k of ['f_name', 'f_kana', 'f_tel', 'f_attempts', 'f_last_result', 'col_action']) head.append(el('th', '', t(k)));
        table.append(head);
        for (const l of S.mode.results) {
          const tr = el('tr');
          const td = el('td');
          const b = el('button', 'act', l.held_by_other ? t('held_by_other') : t('select'));
          b.type = 'button';
          b.disabled = l.held_by_other;
          b.setAttribute('aria-label', `${t('select')} ${l.name}`);
          b.addEventListener('click', () => { S.mode.lead = l; render(); });
          td.append(b);
          tr.append(el('td', '', l.name), el('td', '', l.kana), el('td', '', l.tel), el('td', 'num', num(l.attempts)),
            el('td', '', resultLabel(l.last_result, S.deskCodes)), td);
          table.append(tr);
        }
        box.append(table);
      } else if (S.mode.results) {
        box.append(el('p', 'empty', t('no_data')));
        if (mode === 'dial') {
          const f = el('form', 'search-row');
          const nl = el('label', 'sr', t('name_label'));
          const name = el('input');
          name.id = 'new-lead-name';
          nl.htmlFor = 'new-lead-name';
          name.placeholder = t('name_label');
          name.setAttribute('aria-label', t('name_label'));
          const c = el('button', 'act', t('create_lead'));
          c.type = 'submit';
          const e2 = el('p', 'field-error');
          e2.id = 'e-name';
          f.append(nl, name, c);
          f.addEventListener('submit', (ev) => {
            ev.preventDefault();
            act(async () => {
              const r = await api('POST', '/agent/leads', { name: name.value.trim(), tel: S.mode.searched });
              S.mode.lead = r.lead;
              S.mode.results = null;
              render();
            }, 'e-name');
          });
          box.append(f, e2);
        }
      }
    }
    box.append(notice);
    // What the agent had typed stays across a rebuild (a language switch, a new result).
    const typed = new Map([...panel.querySelectorAll('input[id]')].map((i) => [i.id, i.value]));
    panel.replaceChildren(box);
    for (const i of panel.querySelectorAll('input[id]')) if (typed.get(i.id)) i.value = typed.get(i.id);
  }

  function renderCall() {
    const st = stateName();
    $('call-title').textContent = st === 'wrap_up' ? t('wrapup_title') : st === 'ringing' ? t('offer_title') : st === 'hold' ? t('state_hold') : t('call_title');
    $('b-hangup').disabled = !(st === 'talking' || st === 'hold');
    // 保留 / 保留解除: one button, its name the action it does now.
    const hold = $('b-hold');
    hold.disabled = !(st === 'talking' || st === 'hold');
    $('b-park').disabled = !(st === 'talking' || st === 'hold');
    if (hold.dataset.i18n !== (st === 'hold' ? 'unhold' : 'hold')) {
      hold.dataset.i18n = st === 'hold' ? 'unhold' : 'hold';
      label(hold);
    }
    // 転送: to a colleague who is ready now (the server checks again).
    const to = $('transfer-to');
    const ready = [...S.presence.values()].filter((a) => a.state && a.state.state === 'ready');
    const toSig = JSON.stringify([ready.map((a) => [a.agent_id, a.display_name]), S.lang]);
    if (to.dataset.sig !== toSig) {
      to.dataset.sig = toSig;
      const keep = to.value;
      const none = el('option', '', t('transfer_none'));
      none.value = '';
      to.replaceChildren(none, ...ready.map((a) => { const o = el('option', '', a.display_name); o.value = String(a.agent_id); return o; }));
      if (ready.some((a) => String(a.agent_id) === keep)) to.value = keep;
    }
    $('b-transfer').disabled = !(st === 'talking' || st === 'hold') || !to.value;
    // 外線転送: of the customer one talks with (not on hold), once a number is typed; not twice.
    const inConf = !!S.conf && S.conf.call === S.callId && st === 'talking';
    if (S.conf && !inConf) S.conf = null;
    const saved = $('outside-saved');
    const savedSig = JSON.stringify([S.outsideSaved, S.lang]);
    if (saved.dataset.sig !== savedSig) {
      saved.dataset.sig = savedSig;
      const keep = saved.value;
      const none = el('option', '', t('outside_saved_none'));
      none.value = '';
      const items = S.outsideSaved || [];
      saved.replaceChildren(none, ...items.map((x) => { const o = el('option', '', `${x.name} (${x.number})`); o.value = String(x.id); return o; }));
      saved.hidden = !items.length;
      if (items.some((x) => String(x.id) === keep)) saved.value = keep;
    }
    saved.disabled = st !== 'talking' || S.outsideCall === S.callId;
    $('b-outside').disabled = st !== 'talking' || !$('outside-number').value.trim() || S.outsideCall === S.callId || inConf;
    // 電話会議: a third party from the same number field; then drop it or leave the two together.
    $('b-conf').hidden = inConf;
    $('b-conf').disabled = st !== 'talking' || !$('outside-number').value.trim() || S.outsideCall === S.callId;
    $('b-conf-drop').hidden = !inConf;
    $('b-conf-leave').hidden = !inConf;
    $('b-conf-leave').disabled = !inConf || S.conf.state !== 'joined';
    if (S.outsideMsg) {
      const b = $('banner');
      if (S.outsideMsg.call !== S.callId || st !== 'talking') { S.outsideMsg = null; b.hidden = true; }
      else { b.hidden = false; b.textContent = t(S.outsideMsg.key, S.outsideMsg.vars); }
    }
    $('acw').hidden = st !== 'wrap_up' || !(S.job && S.job.acw_seconds);
    const canSave = st === 'wrap_up' || (S.savedCall === null && st === 'ready');
    $('b-save-next').disabled = !canSave;
    $('b-save-only').disabled = !canSave;
    const L = S.lead;
    const codes = (L && L.result_codes) || S.deskCodes || [];
    const defaults = (L && L.default_results) || S.deskDefaults || [];
    const sel = $('r-result');
    const keep = sel.value;
    const sig = JSON.stringify([codes, defaults, S.lang]);
    if (sel.dataset.codes !== sig) {
      sel.dataset.codes = sig;
      // The campaign's numbered results, then CALLTREE's default statuses (不通, FAX, 現アナ, 見込, 再コール, クレーム).
      const fixed = el('optgroup');
      fixed.label = t('default_results');
      fixed.append(...defaults.map((d) => { const o = el('option', '', resultLabel(d.key, [])); o.value = d.key; return o; }));
      sel.replaceChildren(...codes.map((c) => { const o = el('option', '', `${c.number}: ${c.label}`); o.value = String(c.number); return o; }), ...(defaults.length ? [fixed] : []));
      if (keep) sel.value = keep;
    }
    const dl = $('lead-dl');
    if (!L && S.caller) {
      // A call without a lead: its number, and the phone book's name for it (or -).
      dl.replaceChildren(el('dt', '', t('cb_col_name')), el('dd', '', S.caller.name || '-'), el('dt', '', t('f_tel')), el('dd', '', S.caller.tel));
      dl.dataset.caller = S.caller.tel;
      $('contacts-body').replaceChildren();
      $('contacts-empty').hidden = false;
      return;
    }
    if (!L) {
      dl.replaceChildren(el('dd', 'empty', '…'));
      $('contacts-body').replaceChildren();
      $('contacts-empty').hidden = false;
      return;
    }
    const lead = L.lead;
    dl.dataset.lead = String(lead.id);
    if (!S.editing) {
      const rows = [];
      const row = (k, v, attr) => {
        const dd = el('dd', '', v === null || v === undefined || v === '' ? '—' : String(v));
        if (attr) dd.dataset.field = attr;
        rows.push(el('dt', '', k), dd);
      };
      row(t('f_name'), lead.name, 'name');
      row(t('f_kana'), lead.kana, 'kana');
      row(t('f_tel'), lead.tel, 'tel');
      if ((lead.other_numbers || []).length) {
        row(t('f_other_numbers'), lead.other_numbers.map((n) => (n.label ? `${n.tel} (${n.label})` : n.tel)).join(', '), 'other_numbers');
      }
      row(t('f_remarks'), lead.remarks, 'remarks');
      for (const f of L.custom_fields || []) {
        const v = lead.custom[f.key];
        row(f.label, Array.isArray(v) ? v.join(', ') : v, `custom.${f.key}`);
      }
      const tags = el('dd');
      for (const tg of lead.tags || []) tags.append(el('span', 'tag', String(tg)));
      if (!(lead.tags || []).length) tags.textContent = '—';
      rows.push(el('dt', '', t('f_tags')), tags);
      row(t('f_attempts'), num(lead.attempts));
      row(t('f_last_result'), resultLabel(lead.last_result, codes));
      row(t('f_list'), lead.list_name);
      dl.replaceChildren(...rows);
    }
    $('b-edit-lead').hidden = S.editing;
    $('b-save-lead').hidden = !S.editing;
    $('b-cancel-lead').hidden = !S.editing;
    const contacts = L.contacts || [];
    $('contacts-empty').hidden = contacts.length > 0;
    $('contacts-body').replaceChildren(...contacts.map((c) => {
      const tr = el('tr');
      if (c.call_id && c.call_id === S.callId) tr.className = 'current';
      const memo = el('td', 'memo-cell', c.memo || '');
      tr.append(
        el('td', '', `${when(c.started_at)}${c.call_id && c.call_id === S.callId ? ` ${t('current_call')}` : ''}`),
        el('td', '', when(c.saved_at)), el('td', '', c.tel),
        el('td', '', c.interlocutor ? t(c.interlocutor) : '—'), el('td', '', resultLabel(c.result, codes)),
        el('td', '', c.next_action ? t(`na_${c.next_action}`) + (c.recall_at ? ` ${when(c.recall_at)}` : '') : '—'),
        el('td', 'num', c.talk_ms === null || c.talk_ms === undefined ? '—' : duration(c.talk_ms)),
        el('td', '', c.agent || '—'), memo);
      return tr;
    }));
  }

  function startEdit() {
    if (!S.lead) return;
    S.editing = true;
    const L = S.lead;
    const lead = L.lead;
    const rows = [];
    const input = (k, id, v, area) => {
      const i = el(area ? 'textarea' : 'input');
      i.id = `lf-${id}`;
      i.value = v || '';
      const lab = el('label', '', k);
      lab.htmlFor = i.id;
      const dt = el('dt');
      dt.append(lab);
      const dd = el('dd');
      const err = el('p', 'field-error');
      err.id = `e-${id}`;
      dd.append(i, err);
      rows.push(dt, dd);
    };
    input(t('f_name'), 'name', lead.name);
    input(t('f_kana'), 'kana', lead.kana);
    input(t('f_remarks'), 'remarks', lead.remarks, true);
    for (const f of L.custom_fields || []) input(f.label, `custom.${f.key}`, lead.custom[f.key]);
    $('lead-dl').replaceChildren(...rows);
    render();
    $('lf-name').focus();
  }

  async function saveLead(ev) {
    ev.preventDefault();
    $('lead-error').textContent = '';
    const L = S.lead;
    const body = { name: $('lf-name').value.trim(), kana: $('lf-kana').value.trim(), remarks: $('lf-remarks').value };
    const custom = {};
    for (const f of L.custom_fields || []) custom[f.key] = $(`lf-custom.${f.key}`).value;
    if ((L.custom_fields || []).length) body.custom = custom;
    await act(async () => {
      const r = await api('PATCH', `/agent/leads/${L.lead.id}`, body);
      S.editing = false;
      L.lead = r.lead;
      $('lead-error').textContent = '';
      $('saved-note').dataset.i18n = 'lead_updated';
      $('saved-note').textContent = t('lead_updated');
      await loadLead(L.lead.id);
    }, 'lead-error');
  }

  function renderRecalls() {
    const items = S.recalls || [];
    $('recalls-table').hidden = items.length === 0;
    $('recalls-empty').hidden = items.length > 0;
    const canDial = S.job && stateName() === 'ready' && !S.dialling;
    $('recalls-body').replaceChildren(...items.map((r) => {
      const tr = el('tr');
      tr.dataset.recall = String(r.id);
      const due = r.due_ms !== null && r.due_ms <= Date.now();
      const td = el('td');
      const b = el('button', 'act primary', t('dial_now'));
      b.type = 'button';
      b.disabled = !canDial || !S.job || S.job.campaign_id !== r.campaign_id;
      b.setAttribute('aria-label', `${t('dial_now')} ${r.name}`);
      b.addEventListener('click', async () => {
        S.menu = 'work';
        await dialLead({ recall_id: r.id }, false);
        render();
      });
      td.append(b);
      const dueCell = el('td', due ? 'due' : '', r.due_at ? `${when(r.due_at)}${due ? ` (${t('due_now')})` : ''}` : t('no_time'));
      tr.append(dueCell, el('td', '', r.campaign_name), el('td', '', `${r.name} ${r.tel}`), el('td', 'memo-cell', r.note || ''), td);
      return tr;
    }));
  }

  function renderBadge() {
    const n = (S.recalls || []).length;
    $('recall-badge').hidden = n === 0;
    $('recall-badge').textContent = num(n);
    $('m-recalls').setAttribute('aria-label', `${t('menu_recalls')} ${n}`);
    const f = S.cb.fresh.size;
    $('callback-badge').hidden = f === 0;
    $('callback-badge').textContent = num(f);
    $('m-callbacks').setAttribute('aria-label', f ? `${t('menu_callbacks')} ${t('cb_new', { n: num(f) })}` : t('menu_callbacks'));
    $('cb-new').hidden = f === 0;
    $('cb-new').textContent = t('cb_new', { n: num(f) });
  }

  function renderPresence() {
    const list = [...S.presence.values()];
    $('presence-empty').hidden = list.length > 0;
    $('presence').replaceChildren(...list.map((a) => {
      const li = el('li');
      li.dataset.agent = String(a.agent_id);
      li.dataset.state = (a.state && a.state.state) || 'offline';
      const sw = el('span', 'swatch');
      sw.style.setProperty('--bg', stateColor(a.state));
      li.append(sw, el('span', 'pname', a.display_name), el('span', 'pstate', stateLabel(a.state)));
      return li;
    }));
    // The transfer's choice follows who is ready.
    if (!$('v-call').hidden) renderCall();
  }

  /** Clocks, once a second (display only: no request). */
  function tick() {
    const now = Date.now();
    $('me-state-time').textContent = stateName() === 'offline' ? '' : duration(now - S.since);
    $('wait-time').textContent = duration(now - S.since);
    $('setup-elapsed').textContent = duration(now - S.since);
    $('call-timer').textContent = duration(now - S.since);
    for (const td of document.querySelectorAll('#parked-body .parked-time')) td.textContent = duration(now - Number(td.dataset.since));
    if (stateName() === 'wrap_up' && S.job && S.job.acw_seconds) {
      $('acw').textContent = t('acw_left', { t: duration(S.job.acw_seconds * 1000 - (now - S.since)) });
    }
  }


  // ------------------------------------------------------------------------- 折り返し呼一覧 (callbacks)
  const CB_PAGE = 20;
  const CB_COLS = ['status', 'id', 'registered_at', 'number', 'name', 'campaign_name', 'label', 'assignee_name', 'memo'];
  const CONFLICT_CODE = 409;
  const dash = (v) => (v === null || v === undefined || v === '' ? '-' : String(v));
  const checked = (name) => [...document.querySelectorAll(`input[name="${name}"]:checked`)].map((i) => i.value);

  function callbackQuery() {
    const q = new URLSearchParams({ limit: String(CB_PAGE), offset: String(S.cb.offset), sort: `${S.cb.desc ? '-' : ''}${S.cb.sort}` });
    if (S.cb.q.trim()) q.set('q', S.cb.q.trim());
    const st = checked('cb-status');
    if (st.length === 1) q.set('status', st[0]);
    const who = checked('cb-assignee');
    if (who.length < 3) q.set('assignee', who.length ? who.join(',') : 'nobody');
    return q;
  }

  /** Loads the page of the list; the arrivals counted since the last load are then on it. Only
   *  the newest load is shown: an earlier one answered late (a filter changed, then the next
   *  page asked) must not put its page back. */
  let cbLoads = 0;
  async function loadCallbacks() {
    const q = callbackQuery();
    const load = ++cbLoads;
    $('cb-error').textContent = '';
    try {
      let r;
      if (q.get('assignee') === 'nobody') r = { items: [], total: 0, newest_id: S.cb.newest };
      else r = await api('GET', `/callbacks?${q}`);
      if (load !== cbLoads) return;
      S.cb.items = r.items;
      S.cb.total = r.total;
      S.cb.newest = r.newest_id;
      S.cb.fresh.clear();
      S.cb.loaded = true;
      if (S.cb.sel) {
        const again = r.items.find((c) => c.id === S.cb.sel.id) || (await api('GET', `/callbacks/${S.cb.sel.id}`).catch(() => null));
        if (load !== cbLoads) return;
        S.cb.sel = again;
      }
    } catch (e) {
      if (load !== cbLoads) return;
      $('cb-error').textContent = e.message;
    }
    render();
  }

  /** A callback registered or assigned to the agent: counted on the reload button, and a notification. */
  function callbackPushed(d) {
    if (d.notice === 'callback_assigned' && S.me && d.agent_id !== S.me.id) return;
    const mine = S.cb.mine.has(d.callback_id);
    if (!mine) S.cb.fresh.add(d.callback_id);
    renderBadge();
    if (mine) return;
    const title = t(d.notice === 'callback_assigned' ? 'cb_notify_assigned' : 'cb_notify_new');
    S.stats.notifications.push({ title, id: d.callback_id, permission: 'Notification' in window ? Notification.permission : 'none' });
    if ('Notification' in window && Notification.permission === 'granted') {
      try {
        const n = new Notification(title, { body: `${t('cb_col_id')} ${d.callback_id}`, tag: `callback-${d.callback_id}` });
        n.addEventListener('click', () => { window.focus(); S.menu = 'callbacks'; loadCallbacks(); });
      } catch (_) { /* a browser that refuses notifications from pages */ }
    }
  }

  function sortBy(col) {
    if (S.cb.sort === col) S.cb.desc = !S.cb.desc;
    else { S.cb.sort = col; S.cb.desc = col === 'id' || col === 'registered_at'; }
    S.cb.offset = 0;
    loadCallbacks();
  }

  function renderCallbacks() {
    const sel = $('cb-sort');
    if (sel.dataset.lang !== S.lang) {
      sel.replaceChildren(...CB_COLS.map((c) => { const o = el('option', '', t(`cb_col_${c}`)); o.value = c; return o; }));
      sel.dataset.lang = S.lang;
    }
    sel.value = S.cb.sort;
    $('cb-order').textContent = t(S.cb.desc ? 'cb_desc' : 'cb_asc');
    $('cb-order').setAttribute('aria-label', `${t('cb_sort')}: ${t(S.cb.desc ? 'cb_desc' : 'cb_asc')}`);
    $('cb-head').replaceChildren(...CB_COLS.map((c) => {
      const th = el('th');
      th.scope = 'col';
      if (S.cb.sort === c) th.setAttribute('aria-sort', S.cb.desc ? 'descending' : 'ascending');
      const b = el('button', '', t(`cb_col_${c}`));
      b.type = 'button';
      b.title = t('cb_sort_by', { col: t(`cb_col_${c}`) });
      b.addEventListener('click', () => sortBy(c));
      th.append(b);
      return th;
    }), el('th', '', t('cb_col_recording')));
    const items = S.cb.items;
    $('cb-table').hidden = items.length === 0;
    $('cb-empty').hidden = items.length > 0 || !S.cb.loaded;
    $('cb-body').replaceChildren(...items.map((c) => {
      const tr = el('tr', S.cb.sel && S.cb.sel.id === c.id ? 'current' : '');
      tr.dataset.callback = String(c.id);
      tr.tabIndex = 0;
      tr.setAttribute('aria-label', `${t('cb_col_id')} ${c.id} ${c.number}`);
      const open = () => { S.cb.sel = c; S.cb.editing = null; S.cb.problem = null; render(); };
      tr.addEventListener('click', open);
      tr.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') open(); });
      const status = el('span', `st st-${c.status}`, t(`cb_${c.status}`));
      const td = el('td');
      td.append(status);
      const rec = el('td');
      if (c.recording_id) rec.append(playButton(c));
      tr.append(td, el('td', 'num', String(c.id)), el('td', '', when(c.registered_at)), el('td', '', c.number), el('td', '', dash(c.name)),
        el('td', '', dash(c.campaign_name)), el('td', '', dash(c.label)), el('td', '', dash(c.assignee_name)), el('td', 'memo-cell', c.memo || ''), rec);
      return tr;
    }));
    const from = S.cb.total ? S.cb.offset + 1 : 0;
    const to = S.cb.offset + items.length;
    $('cb-range').textContent = t('cb_range', { from: num(from), to: num(to), total: num(S.cb.total) });
    $('cb-prev').disabled = S.cb.offset === 0;
    $('cb-next').disabled = to >= S.cb.total;
    renderCallbackDetail();
  }

  /** 録音再生 / 停止: the callback's call, fetched with the agent's token and played from a blob. */
  function playButton(c) {
    const playing = S.cb.audio && S.cb.audio.id === c.id;
    const b = el('button', 'plain', t(playing ? 'cb_stop' : 'cb_play'));
    b.type = 'button';
    b.setAttribute('aria-label', `${t(playing ? 'cb_stop' : 'cb_play')} ${c.id}`);
    b.addEventListener('click', async (ev) => {
      ev.stopPropagation();
      if (S.cb.audio) {
        const was = S.cb.audio.id;
        S.cb.audio.el.pause();
        URL.revokeObjectURL(S.cb.audio.url);
        S.cb.audio = null;
        if (was === c.id) return render();
      }
      try {
        const r = await fetch(`/callbacks/${c.id}/audio`, { headers: { Authorization: `Bearer ${S.token}` } });
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        const url = URL.createObjectURL(await r.blob());
        const audio = new Audio(url);
        S.cb.audio = { id: c.id, el: audio, url };
        audio.addEventListener('ended', () => { if (S.cb.audio && S.cb.audio.id === c.id) { URL.revokeObjectURL(url); S.cb.audio = null; render(); } });
        audio.play().catch(() => {});
      } catch (e) { $('cb-error').textContent = e.message; }
      render();
    });
    return b;
  }

  function small(key, onClick, cls = 'plain') {
    const b = el('button', cls, t(key));
    b.type = 'button';
    b.addEventListener('click', onClick);
    return b;
  }

  /** A write of the selected callback; a 409 is shown with a reload, other refusals on the panel. */
  async function callbackWrite(f) {
    S.cb.problem = null;
    try {
      const c = await f();
      S.cb.sel = c;
      S.cb.editing = null;
      S.cb.items = S.cb.items.map((x) => (x.id === c.id ? c : x));
    } catch (e) {
      S.cb.problem = { message: e.message, conflict: e.status === CONFLICT_CODE };
    }
    render();
  }

  function renderCallbackDetail() {
    const c = S.cb.sel;
    $('cb-detail').hidden = !c;
    if (!c) return;
    const me = S.me && c.assignee_user_id === S.me.id;
    $('cb-detail-h').textContent = t('cb_detail', { id: c.id });
    const dl = $('cb-dl');
    dl.replaceChildren();
    const row = (key, ...content) => {
      const dd = el('dd');
      dd.dataset.f = key;
      dd.append(...content);
      dl.append(el('dt', '', t(key)), dd);
      return dd;
    };
    // 対応状況 and its 編集 (once assigned; an agent only on its own callbacks).
    if (S.cb.editing === 'status') {
      const pick = el('select');
      pick.setAttribute('aria-label', t('cb_col_status'));
      for (const s of ['open', 'done']) { const o = el('option', '', t(`cb_${s}`)); o.value = s; o.selected = c.status === s; pick.append(o); }
      row('cb_col_status', pick, small('cb_save', () => callbackWrite(() => api('PATCH', `/callbacks/${c.id}`, { status: pick.value, version: c.version })), 'act primary'),
        small('cb_cancel', () => { S.cb.editing = null; render(); }));
    } else {
      const edit = small('cb_edit', () => { S.cb.editing = 'status'; render(); });
      edit.setAttribute('aria-label', `${t('cb_col_status')} ${t('cb_edit')}`);
      edit.disabled = !me;
      if (!c.assignee_user_id) edit.title = t('cb_status_needs_assignee');
      row('cb_col_status', el('span', `st st-${c.status}`, t(`cb_${c.status}`)), edit);
    }
    // 担当者 and its + (担当者を割り当てます).
    const who = row('cb_col_assignee_name', c.assignee_name || t('cb_unregistered'));
    if (!c.assignee_user_id) {
      const plus = small('cb_assign', async () => {
        if (!(await dialog(t('cb_assign_confirm'), true))) return;
        S.cb.mine.add(c.id);
        callbackWrite(() => api('POST', `/callbacks/${c.id}/assign`, { version: c.version }));
      }, 'act');
      plus.textContent = '+';
      plus.setAttribute('aria-label', t('cb_assign'));
      plus.title = t('cb_assign');
      who.append(plus);
    }
    row('cb_col_registered_at', when(c.registered_at));
    row('cb_col_number', c.number);
    row('cb_col_name', dash(c.name));
    row('cb_campaign', dash(c.campaign_name));
    row('cb_label', dash(c.label));
    row('cb_request_id', dash(c.call_record_id));
    // メモ: edited, saved or cancelled on its own.
    if (S.cb.editing === 'memo') {
      const ta = el('textarea');
      ta.rows = 3;
      ta.maxLength = 5000;
      ta.value = c.memo || '';
      ta.setAttribute('aria-label', t('cb_col_memo'));
      row('cb_col_memo', ta, small('cb_save', () => callbackWrite(() => api('PATCH', `/callbacks/${c.id}`, { memo: ta.value, version: c.version })), 'act primary'),
        small('cb_cancel', () => { S.cb.editing = null; render(); }));
    } else {
      const edit = small('cb_edit', () => { S.cb.editing = 'memo'; render(); });
      edit.setAttribute('aria-label', `${t('cb_col_memo')} ${t('cb_edit')}`);
      row('cb_col_memo', el('span', 'memo-cell', c.memo || ''), edit);
    }
    const actions = $('cb-actions');
    actions.replaceChildren();
    if (c.recording_id) actions.append(playButton(c));
    if (me && c.status === 'open') {
      const dial = small('cb_dial', async () => {
        S.cb.problem = null;
        try {
          await api('POST', `/agent/callbacks/${c.id}/dial`, {});
          S.menu = 'work';
          render();
        } catch (e) { S.cb.problem = { message: e.message, conflict: false }; render(); }
      }, 'act primary');
      dial.disabled = !(S.job && stateName() === 'ready' && !S.dialling);
      dial.title = t('cb_dial_hint');
      actions.append(dial);
    }
    const box = $('cb-detail-error');
    box.replaceChildren();
    if (S.cb.problem) {
      box.append(el('span', '', S.cb.problem.message));
      if (S.cb.problem.conflict) box.append(' ', small('cb_reload', () => { S.cb.problem = null; loadCallbacks(); }, 'act'));
    }
  }

  function initCallbacks() {
    let typing = 0;
    $('cb-filter').addEventListener('input', () => {
      clearTimeout(typing);
      typing = setTimeout(() => { S.cb.q = $('cb-filter').value; S.cb.offset = 0; loadCallbacks(); }, 250);
    });
    $('cb-sort').addEventListener('change', () => { S.cb.sort = $('cb-sort').value; S.cb.offset = 0; loadCallbacks(); });
    $('cb-order').addEventListener('click', () => { S.cb.desc = !S.cb.desc; S.cb.offset = 0; loadCallbacks(); });
    $('cb-reload').addEventListener('click', loadCallbacks);
    $('cb-prev').addEventListener('click', () => { S.cb.offset = Math.max(0, S.cb.offset - CB_PAGE); loadCallbacks(); });
    $('cb-next').addEventListener('click', () => { S.cb.offset += CB_PAGE; loadCallbacks(); });
    for (const i of document.querySelectorAll('input[name="cb-status"], input[name="cb-assignee"]')) {
      i.addEventListener('change', () => { S.cb.offset = 0; loadCallbacks(); });
    }
  }

  // ---------------------------------------------------------------------------------- keys, language
  const KEYS = { caller_id: 'c', ready: 'r', pause: 'p', resume: 'r', end: 'e', hang_up: 'h', dial: 'd', skip: 'k', assign: 'a', save_next: 'n', save_only: 'o' };

  /** A button's label in the current language, with its shortcut (Alt+key) shown beside it. */
  function label(b) {
    b.textContent = t(b.dataset.i18n);
    const k = b.dataset.key;
    if (k) {
      const kbd = el('kbd', '', `Alt+${k.toUpperCase()}`);
      kbd.setAttribute('aria-hidden', 'true');
      b.append(kbd);
      b.setAttribute('aria-keyshortcuts', `Alt+${k.toUpperCase()}`);
    }
  }

  function applyLang() {
    document.documentElement.lang = S.lang;
    document.title = `kakeru ${t('title')}`;
    for (const e of document.querySelectorAll('[data-i18n]')) {
      if (e.tagName === 'BUTTON') label(e);
      else e.textContent = t(e.dataset.i18n);
    }
    for (const e of document.querySelectorAll('[data-i18n-label]')) e.setAttribute('aria-label', t(e.dataset.i18nLabel));
    for (const b of document.querySelectorAll('[data-lang]')) b.setAttribute('aria-pressed', String(b.dataset.lang === S.lang));
    setConn($('conn').dataset.state);
    tell('lang', S.lang);
    fillReasons();
    render();
    renderPresence();
  }

  function fillReasons() {
    const sel = $('pause-reason');
    const keep = sel.value;
    sel.replaceChildren(...[...S.reasons].map(([id, r]) => { const o = el('option', '', r.name); o.value = String(id); return o; }));
    if (keep) sel.value = keep;
  }

  function onKey(ev) {
    if (ev.ctrlKey && ev.key === 'Enter' && !$('v-call').hidden) { ev.preventDefault(); $('b-save-next').click(); return; }
    if (!ev.altKey || ev.ctrlKey || ev.metaKey) return;
    const k = ev.key.toLowerCase();
    const b = [...document.querySelectorAll(`[data-key="${k}"]`)].find((x) => !x.disabled && x.offsetParent !== null);
    if (b) { ev.preventDefault(); if (b.tagName === 'SELECT') b.focus(); else b.click(); }
  }

  // ------------------------------------------------------------------------------------------ start
  async function start() {
    if (!S.token) return toLogin();
    try {
      S.me = await api('GET', '/me');
    } catch (_) {
      return toLogin();
    }
    $('who').textContent = `${S.me.login} (${S.me.role})`;
    try {
      const rs = await api('GET', '/pause-reasons?limit=500');
      for (const r of rs.items) S.reasons.set(r.id, { name: r.name, color: r.color });
    } catch (_) { /* no pause reasons */ }
    fillReasons();
    // BIZTEL asks at the first log-in: new callbacks are shown as browser notifications.
    if ('Notification' in window && Notification.permission === 'default') Notification.requestPermission().catch(() => {});
    render();
    connect();
  }

  function init() {
    for (const b of document.querySelectorAll('[data-lang]')) {
      b.addEventListener('click', () => { S.lang = b.dataset.lang; localStorage.setItem('kakeru.lang', S.lang); applyLang(); });
    }
    $('b-ready').addEventListener('click', () => act(() => api('POST', '/agent/ready')));
    $('b-resume').addEventListener('click', () => act(() => api('POST', '/agent/ready')));
    $('b-pause').addEventListener('click', () => act(() => api('POST', '/agent/pause', { reason_id: Number($('pause-reason').value) })));
    $('b-end').addEventListener('click', endJob);
    $('b-hangup').addEventListener('click', async () => {
      if (!S.callId || !(await dialog(t('confirm_hang_up'), true))) return;
      await act(() => api('POST', `/agent/calls/${S.callId}/hang-up`));
    });
    $('transfer-to').addEventListener('change', render);
    $('b-transfer').addEventListener('click', async () => {
      const to = $('transfer-to');
      if (!S.callId || !to.value) return;
      if (!(await dialog(t('confirm_transfer', { name: to.selectedOptions[0].textContent }), true))) return;
      await act(() => api('POST', `/agent/calls/${S.callId}/transfer`, { agent_id: Number(to.value) }));
    });
    $('b-park').addEventListener('click', async () => {
      if (!S.callId || !(await dialog(t('confirm_park'), true))) return;
      await act(() => api('POST', `/agent/calls/${S.callId}/park`));
    });
    $('outside-number').addEventListener('input', () => { $('outside-saved').value = ''; render(); });
    $('outside-saved').addEventListener('change', () => {
      const x = savedOutside();
      if (x) $('outside-number').value = x.number;
      render();
    });
    /** The saved outside number chosen (its own caller ID goes with it), or null for a typed one. */
    function savedOutside() {
      const v = $('outside-saved').value;
      return (v && (S.outsideSaved || []).find((x) => String(x.id) === v)) || null;
    }
    /** The body that calls the number field's number: a saved entry by its id, else the number. */
    function outsideBody(number) {
      const x = savedOutside();
      return x && x.number === number ? { outside_transfer_id: x.id } : { number };
    }
    $('b-outside').addEventListener('click', async () => {
      const number = $('outside-number').value.trim();
      if (!S.callId || !number) return;
      if (!(await dialog(t('confirm_outside', { number }), true))) return;
      const call = S.callId;
      try {
        await api('POST', `/agent/calls/${call}/transfer-outside`, outsideBody(number));
        S.outsideCall = call;
        outsideSay('outside_calling', { number }, call);
        return;
      } catch (e) {
        $('banner').hidden = false;
        $('banner').textContent = e.message;
      }
      render();
    });
    $('b-conf').addEventListener('click', async () => {
      const number = $('outside-number').value.trim();
      if (!S.callId || !number) return;
      if (!(await dialog(t('confirm_conference', { number }), true))) return;
      const call = S.callId;
      try {
        await api('POST', `/agent/calls/${call}/conference`, outsideBody(number));
        S.conf = { call, state: 'calling' };
        outsideSay('conf_calling', { number }, call);
      } catch (e) {
        $('banner').hidden = false;
        $('banner').textContent = e.message;
      }
    });
    $('b-conf-drop').addEventListener('click', () => {
      if (S.callId) act(() => api('DELETE', `/agent/calls/${S.callId}/conference`));
    });
    $('b-conf-leave').addEventListener('click', () => {
      if (S.callId) act(() => api('POST', `/agent/calls/${S.callId}/conference/leave`));
    });
    $('b-hold').addEventListener('click', () => {
      if (S.callId) act(() => api('POST', `/agent/calls/${S.callId}/${stateName() === 'hold' ? 'unhold' : 'hold'}`));
    });
    $('record-form').addEventListener('submit', (ev) => { ev.preventDefault(); saveRecord(true); });
    // 再コール is saved with a recall; a クレーム stops the lead, so its record completes it.
    $('r-result').addEventListener('change', () => {
      const na = { recall: 'recall', complaint: 'complete' }[$('r-result').value];
      if (!na) return;
      document.querySelector(`input[name="next_action"][value="${na}"]`).checked = true;
      $('recall-box').hidden = na !== 'recall';
    });
    $('b-save-only').addEventListener('click', () => saveRecord(false));
    $('b-edit-lead').addEventListener('click', startEdit);
    $('b-cancel-lead').addEventListener('click', () => { S.editing = false; render(); });
    $('lead-form').addEventListener('submit', saveLead);
    for (const r of document.querySelectorAll('input[name="next_action"]')) {
      r.addEventListener('change', () => { $('recall-box').hidden = document.querySelector('input[name="next_action"]:checked').value !== 'recall'; });
    }
    for (const b of document.querySelectorAll('[data-preset]')) {
      b.addEventListener('click', () => { $('r-recall-at').value = localIn(Number(b.dataset.preset)); });
    }
    $('r-memo').addEventListener('input', () => { $('memo-count').textContent = `${num($('r-memo').value.length)} / ${num(5000)}`; });
    $('m-work').addEventListener('click', () => { S.menu = 'work'; render(); });
    $('m-recalls').addEventListener('click', () => { S.menu = 'recalls'; loadRecalls(); });
    $('m-callbacks').addEventListener('click', () => { S.menu = 'callbacks'; render(); loadCallbacks(); });
    initCallbacks();
    $('b-logout').addEventListener('click', async () => {
      stopStream();
      try { await api('POST', '/auth/logout'); } catch (_) { /* gone already */ }
      toLogin();
    });
    document.addEventListener('keydown', onKey);
    $('m-work').dataset.key = 'j';
    $('m-recalls').dataset.key = 'l';
    $('m-callbacks').dataset.key = 'b';
    applyLang();
    setInterval(tick, 1000);
    start();
  }

  init();
})();
